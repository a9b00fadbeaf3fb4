//! Front-end of the Dockerfile builder. See the crate README for the layout.

pub mod glob;
pub mod shell_words;
