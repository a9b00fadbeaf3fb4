//! The Dockerfile builder: the front-end (pure code, no I/O), its file side (build context,
//! checksums, COPY/ADD, through descriptors only), and the solver, which runs the steps
//! through a backend the engine implements.
//!
//! | module | holds |
//! |---|---|
//! | [`parser`] | text → [`parser::Node`]s: directives, comments, continuations, flags, JSON/shell forms, heredocs |
//! | [`instructions`] | nodes → typed [`instructions::Instruction`]s and [`instructions::Stage`]s; `RUN --mount`; which arguments are expanded |
//! | [`shell_words`] | `$var` substitution and word splitting (BuildKit's `shell/lex.go`) |
//! | [`ignore`] | `.dockerignore` matching and directory skipping |
//! | [`glob`] | Go's `filepath.Match`, for COPY/ADD sources |
//! | [`platform`] | `os/arch[/variant]`, the platform build args, the proxy args |
//! | [`solver`] | a parsed Dockerfile run step by step against a [`solver::Backend`] (the engine), with the cache |
//! | [`context`] | the `POST /build` body extracted into a directory; `.dockerignore`; `pack_dir` |
//! | [`checksum`] | content checksums of COPY/ADD sources for cache keys; the hash memo |
//! | [`copy`] | COPY/ADD into a root filesystem |
//! | [`sources`] | COPY/ADD source patterns resolved in a root; the tree walk |
//! | [`compression`] | gzip/bzip2/xz/zstd detection; "is this a tar" |
//! | [`unpack`] | tar → directory, confined (context and ADD archives) |
//!
//! [`parse`] is the entry point for a whole file. It never panics, whatever
//! the input.

pub mod checksum;
pub mod compression;
pub mod context;
pub mod copy;
mod fsops;
pub mod glob;
pub mod ignore;
pub mod instructions;
pub mod parser;
pub mod platform;
pub mod shell_words;
pub mod solver;
pub mod sources;
pub mod unpack;

#[cfg(test)]
mod robustness_tests;

pub use instructions::{Command, Dockerfile, Instruction, Stage};

/// Why a Dockerfile could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Parse(#[from] parser::ParseError),
    #[error(transparent)]
    Instruction(#[from] instructions::InstructionError),
}

impl Error {
    /// The 1-based line the error is about.
    pub fn line(&self) -> usize {
        match self {
            Error::Parse(e) => e.line,
            Error::Instruction(e) => e.line,
        }
    }
}

/// Parses a whole Dockerfile into meta args and stages.
pub fn parse(text: &str) -> Result<Dockerfile, Error> {
    let ast = parser::parse(text)?;
    Ok(instructions::from_ast(&ast)?)
}
