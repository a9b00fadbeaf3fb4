//! Front-end of the Dockerfile builder. See the crate README for the layout.

pub mod glob;
pub mod instructions;
pub mod parser;
pub mod shell_words;
