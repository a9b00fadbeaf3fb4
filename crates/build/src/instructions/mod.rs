//! Typed instructions and build stages, converted from parser nodes with
//! BuildKit's validation (`frontend/dockerfile/instructions`).
//!
//! Values are kept as written: quotes, escapes and `$var`s are resolved
//! by [`Instruction::expand`] for the instructions whose arguments the
//! builder expands (see [`expand`]).

mod convert;
mod duration;
pub mod expand;
mod flags;
pub mod mount;
#[cfg(test)]
mod tests;

use std::time::Duration;

pub use convert::{from_ast, parse_node};
pub use flags::FlagError;
pub use mount::{MountError, MountType, RunMount, Sharing};

use crate::parser::{Directive, Heredoc, Warning};

/// What is wrong with an instruction, in BuildKit's words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InstructionErrorKind {
    #[error("unknown instruction: {name}{}", suggestion.as_ref().map(|s| format!(" (did you mean {s}?)")).unwrap_or_default())]
    UnknownInstruction {
        name: String,
        suggestion: Option<String>,
    },
    #[error("{0} requires at least one argument")]
    AtLeastOneArgument(&'static str),
    #[error("{0} requires exactly one argument")]
    ExactlyOneArgument(&'static str),
    #[error("{0} requires at least two arguments, but only one was provided. Destination could not be determined")]
    NoDestination(&'static str),
    #[error("{0} cannot accept a heredoc as {1}")]
    BadHeredoc(&'static str, &'static str),
    #[error("{0} names can not be blank")]
    BlankNames(&'static str),
    #[error("Bad input to {0}, too many arguments")]
    TooManyArguments(&'static str),
    #[error("FROM requires either one or three arguments")]
    FromArguments,
    #[error(
        "invalid name for build stage: {0:?}, name can't start with a number or contain symbols"
    )]
    InvalidStageName(String),
    #[error("duplicate stage name {0:?}")]
    DuplicateStageName(String),
    #[error("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed")]
    OnbuildChaining,
    #[error("{0} isn't allowed as an ONBUILD trigger")]
    OnbuildTrigger(String),
    #[error("HEALTHCHECK NONE takes no arguments")]
    HealthcheckNoneArguments,
    #[error("Missing command after HEALTHCHECK CMD")]
    HealthcheckMissingCommand,
    #[error("Unknown type {0:?} in HEALTHCHECK (try CMD)")]
    HealthcheckType(String),
    /// Go's `time.ParseDuration` error text.
    #[error("{0}")]
    Duration(String),
    #[error("Interval {0:?} cannot be less than 1ms")]
    IntervalTooShort(String),
    #[error("strconv.ParseInt: parsing {0:?}: invalid syntax")]
    Retries(String),
    #[error("--retries cannot be negative ({0})")]
    NegativeRetries(i64),
    #[error("VOLUME specified can not be an empty string")]
    EmptyVolume,
    #[error("{0} requires the arguments to be in JSON form")]
    NotJson(&'static str),
    #[error("invalid network mode {0:?}")]
    InvalidNetwork(String),
    #[error("security={0} is not allowed, use insecure or sandbox")]
    InvalidSecurity(String),
    #[error("no build stage in current context")]
    NoStage,
    #[error(transparent)]
    Flag(#[from] FlagError),
    #[error(transparent)]
    Mount(#[from] MountError),
}

/// An instruction error and the (1-based) line of the instruction.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("dockerfile parse error on line {line}: {kind}")]
pub struct InstructionError {
    pub line: usize,
    pub kind: InstructionErrorKind,
}

/// Shell form (run through the stage's SHELL) or exec form (JSON array).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShellOrExec {
    Shell(String),
    Exec(Vec<String>),
}

/// `RUN --network=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetworkMode {
    Default,
    None,
    Host,
}

/// `RUN --security=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecurityMode {
    Sandbox,
    Insecure,
}

/// `FROM [--platform=p] image [AS name]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct From {
    pub image: String,
    pub platform: Option<String>,
    /// Lower-cased, validated stage name.
    pub alias: Option<String>,
}

/// `RUN`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Run {
    pub cmd: ShellOrExec,
    pub mounts: Vec<RunMount>,
    pub network: Option<NetworkMode>,
    pub security: Option<SecurityMode>,
    /// Heredoc files (content raw; `chomp` tells whether to strip tabs).
    pub heredocs: Vec<Heredoc>,
}

/// A COPY/ADD source given inline as a heredoc (`COPY <<EOF /dst`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InlineSource {
    /// The heredoc name, used as the file name.
    pub path: String,
    /// Content, tabs already stripped for `<<-`.
    pub data: String,
    /// Expand variables in `data` (delimiter not quoted).
    pub expand: bool,
}

/// `ADD`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Add {
    pub sources: Vec<String>,
    pub inline: Vec<InlineSource>,
    pub dest: String,
    pub chown: Option<String>,
    pub chmod: Option<String>,
    pub checksum: Option<String>,
    pub keep_git_dir: bool,
    pub link: bool,
    pub exclude: Vec<String>,
    /// Sources came as a JSON array.
    pub json: bool,
}

/// `COPY`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Copy {
    pub sources: Vec<String>,
    pub inline: Vec<InlineSource>,
    pub dest: String,
    pub from: Option<String>,
    pub chown: Option<String>,
    pub chmod: Option<String>,
    pub link: bool,
    pub parents: bool,
    pub exclude: Vec<String>,
    pub json: bool,
}

/// `HEALTHCHECK`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Healthcheck {
    /// `HEALTHCHECK NONE`: disable the base image's check.
    None,
    Cmd {
        /// Docker's `Test`: `["CMD", args...]` or `["CMD-SHELL", "cmd"]`.
        test: Vec<String>,
        /// Unset (or 0) means the default.
        interval: Option<Duration>,
        timeout: Option<Duration>,
        start_period: Option<Duration>,
        start_interval: Option<Duration>,
        retries: Option<u32>,
    },
}

/// One Dockerfile instruction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Instruction {
    From(From),
    Run(Run),
    Cmd(ShellOrExec),
    Entrypoint(ShellOrExec),
    /// `(key, value)`, both as written.
    Label(Vec<(String, String)>),
    Maintainer(String),
    Expose(Vec<String>),
    Env(Vec<(String, String)>),
    Add(Add),
    Copy(Copy),
    Volume(Vec<String>),
    User(String),
    Workdir(String),
    /// The trigger instruction's text (heredocs appended).
    Onbuild(String),
    Stopsignal(String),
    Healthcheck(Healthcheck),
    Shell(Vec<String>),
    /// `(name, default)`.
    Arg(Vec<(String, Option<String>)>),
}

impl Instruction {
    /// The upper-case keyword (`RUN`).
    pub fn keyword(&self) -> &'static str {
        match self {
            Instruction::From(_) => "FROM",
            Instruction::Run(_) => "RUN",
            Instruction::Cmd(_) => "CMD",
            Instruction::Entrypoint(_) => "ENTRYPOINT",
            Instruction::Label(_) => "LABEL",
            Instruction::Maintainer(_) => "MAINTAINER",
            Instruction::Expose(_) => "EXPOSE",
            Instruction::Env(_) => "ENV",
            Instruction::Add(_) => "ADD",
            Instruction::Copy(_) => "COPY",
            Instruction::Volume(_) => "VOLUME",
            Instruction::User(_) => "USER",
            Instruction::Workdir(_) => "WORKDIR",
            Instruction::Onbuild(_) => "ONBUILD",
            Instruction::Stopsignal(_) => "STOPSIGNAL",
            Instruction::Healthcheck(_) => "HEALTHCHECK",
            Instruction::Shell(_) => "SHELL",
            Instruction::Arg(_) => "ARG",
        }
    }
}

/// An instruction with where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    pub instruction: Instruction,
    /// First line, 1-based.
    pub line: usize,
    /// Last line (continuations and heredocs included).
    pub end_line: usize,
    /// The instruction's text, continuations joined.
    pub original: String,
}

/// A build stage: `FROM` and the instructions up to the next `FROM`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stage {
    /// `AS name`, lower-cased.
    pub name: Option<String>,
    /// The base image or stage as written (may hold meta args).
    pub base: String,
    /// `--platform` as written.
    pub platform: Option<String>,
    /// Line of the `FROM`.
    pub line: usize,
    /// The `FROM` line's text, trimmed.
    pub original: String,
    /// Instructions after `FROM` (never `From`).
    pub commands: Vec<Command>,
}

/// A whole Dockerfile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dockerfile {
    /// `ARG`s before the first `FROM` (each command is an [`Instruction::Arg`]).
    pub meta_args: Vec<Command>,
    pub stages: Vec<Stage>,
    /// The escape character.
    pub escape: char,
    pub directives: Vec<Directive>,
    pub warnings: Vec<Warning>,
}

impl Dockerfile {
    /// The meta args as `(name, default)`, in order.
    pub fn meta_arg_pairs(&self) -> Vec<(String, Option<String>)> {
        self.meta_args
            .iter()
            .filter_map(|c| match &c.instruction {
                Instruction::Arg(a) => Some(a.clone()),
                _ => None,
            })
            .flatten()
            .collect()
    }

    /// The stage called `name` (case-insensitive), or by index (`"0"`).
    pub fn stage(&self, name: &str) -> Option<&Stage> {
        let lower = name.to_ascii_lowercase();
        self.stages
            .iter()
            .find(|s| s.name.as_deref() == Some(lower.as_str()))
            .or_else(|| name.parse::<usize>().ok().and_then(|i| self.stages.get(i)))
    }
}
