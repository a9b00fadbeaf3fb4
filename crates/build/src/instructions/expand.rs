//! Which instruction arguments the builder expands, as BuildKit's
//! `dockerfile2llb` does:
//!
//! | instruction | expanded |
//! |---|---|
//! | FROM | image and `--platform`, with the meta args only (caller's env) |
//! | ENV, LABEL | keys and values |
//! | ARG | default values (not names) |
//! | COPY | sources, destination, `--from`, `--chown`, `--chmod`; heredoc bodies unless the delimiter was quoted |
//! | ADD | sources, destination, `--chown`, `--chmod`, `--checksum`; heredoc bodies likewise |
//! | EXPOSE | each port, split into words after expansion |
//! | USER, WORKDIR, STOPSIGNAL, VOLUME | their words |
//! | RUN | only `--mount` values (the command goes to the shell as is) |
//! | CMD, ENTRYPOINT, SHELL, HEALTHCHECK, MAINTAINER, ONBUILD | nothing |
//!
//! Heredoc bodies are expanded with quote processing off (BuildKit's
//! `SkipProcessQuotes`), so quotes in a file's content stay.

use std::collections::BTreeSet;

use super::{Add, Copy, From, Instruction, Run, RunMount};
use crate::instructions::mount::MountError;
use crate::shell_words::{variables_used, Env, ExpandError, Lex};

/// Errors of expansion.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExpandInstructionError {
    #[error(transparent)]
    Word(#[from] ExpandError),
    #[error(transparent)]
    Mount(#[from] MountError),
}

impl Instruction {
    /// The instruction with every argument the builder expands substituted
    /// from `env` (quotes and escapes removed); others are returned as is.
    pub fn expand(&self, lex: &Lex, env: &dyn Env) -> Result<Instruction, ExpandInstructionError> {
        let w = |s: &str| lex.process_word(s, env);
        let opt = |s: &Option<String>| s.as_deref().map(w).transpose();
        let all = |v: &[String]| v.iter().map(|s| w(s)).collect::<Result<Vec<_>, _>>();
        let kv = |v: &[(String, String)]| {
            v.iter()
                .map(|(k, val)| Ok((w(k)?, w(val)?)))
                .collect::<Result<Vec<_>, ExpandError>>()
        };
        let mut body_lex = *lex;
        body_lex.skip_process_quotes = true;
        let inline = |v: &[super::InlineSource]| {
            v.iter()
                .map(|s| {
                    let mut s = s.clone();
                    if s.expand {
                        s.data = body_lex.process_word(&s.data, env)?;
                    }
                    Ok(s)
                })
                .collect::<Result<Vec<_>, ExpandError>>()
        };
        Ok(match self {
            Instruction::From(f) => Instruction::From(From {
                image: w(&f.image)?,
                platform: opt(&f.platform)?,
                alias: f.alias.clone(),
            }),
            Instruction::Env(v) => Instruction::Env(kv(v)?),
            Instruction::Label(v) => Instruction::Label(kv(v)?),
            Instruction::Arg(v) => Instruction::Arg(
                v.iter()
                    .map(|(k, d)| Ok((k.clone(), opt(d)?)))
                    .collect::<Result<Vec<_>, ExpandError>>()?,
            ),
            Instruction::Copy(c) => Instruction::Copy(Copy {
                sources: all(&c.sources)?,
                inline: inline(&c.inline)?,
                dest: w(&c.dest)?,
                from: opt(&c.from)?,
                chown: opt(&c.chown)?,
                chmod: opt(&c.chmod)?,
                ..c.clone()
            }),
            Instruction::Add(a) => Instruction::Add(Add {
                sources: all(&a.sources)?,
                inline: inline(&a.inline)?,
                dest: w(&a.dest)?,
                chown: opt(&a.chown)?,
                chmod: opt(&a.chmod)?,
                checksum: opt(&a.checksum)?,
                ..a.clone()
            }),
            Instruction::Expose(ports) => {
                let mut out = Vec::new();
                for p in ports {
                    out.extend(lex.process_words(p, env)?);
                }
                Instruction::Expose(out)
            }
            Instruction::User(u) => Instruction::User(w(u)?),
            Instruction::Workdir(p) => Instruction::Workdir(w(p)?),
            Instruction::Stopsignal(s) => Instruction::Stopsignal(w(s)?),
            Instruction::Volume(v) => Instruction::Volume(all(v)?),
            Instruction::Run(r) => {
                let mut expand = |s: &str| lex.process_word(s, env);
                let mounts = r
                    .mounts
                    .iter()
                    .map(|m| RunMount::parse_expanded(&m.spec, &mut expand))
                    .collect::<Result<Vec<_>, _>>()?;
                Instruction::Run(Run {
                    mounts,
                    ..r.clone()
                })
            }
            Instruction::Cmd(_)
            | Instruction::Entrypoint(_)
            | Instruction::Shell(_)
            | Instruction::Healthcheck(_)
            | Instruction::Maintainer(_)
            | Instruction::Onbuild(_) => self.clone(),
        })
    }

    /// The words [`Instruction::expand`] would process (inline heredoc
    /// bodies and mount specs included).
    pub fn expandable_words(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        match self {
            Instruction::From(f) => {
                out.push(&f.image);
                out.extend(f.platform.as_deref());
            }
            Instruction::Env(v) | Instruction::Label(v) => {
                for (k, val) in v {
                    out.push(k);
                    out.push(val);
                }
            }
            Instruction::Arg(v) => out.extend(v.iter().filter_map(|(_, d)| d.as_deref())),
            Instruction::Copy(c) => {
                out.extend(c.sources.iter().map(String::as_str));
                out.push(&c.dest);
                out.extend(
                    [&c.from, &c.chown, &c.chmod]
                        .into_iter()
                        .filter_map(|o| o.as_deref()),
                );
                out.extend(
                    c.inline
                        .iter()
                        .filter(|s| s.expand)
                        .map(|s| s.data.as_str()),
                );
            }
            Instruction::Add(a) => {
                out.extend(a.sources.iter().map(String::as_str));
                out.push(&a.dest);
                out.extend(
                    [&a.chown, &a.chmod, &a.checksum]
                        .into_iter()
                        .filter_map(|o| o.as_deref()),
                );
                out.extend(
                    a.inline
                        .iter()
                        .filter(|s| s.expand)
                        .map(|s| s.data.as_str()),
                );
            }
            Instruction::Expose(v) | Instruction::Volume(v) => {
                out.extend(v.iter().map(String::as_str))
            }
            Instruction::User(s) | Instruction::Workdir(s) | Instruction::Stopsignal(s) => {
                out.push(s)
            }
            Instruction::Run(r) => out.extend(r.mounts.iter().map(|m| m.spec.as_str())),
            Instruction::Cmd(_)
            | Instruction::Entrypoint(_)
            | Instruction::Shell(_)
            | Instruction::Healthcheck(_)
            | Instruction::Maintainer(_)
            | Instruction::Onbuild(_) => {}
        }
        out
    }

    /// Names of the variables the builder would substitute in this
    /// instruction (for "build args in use" and the unused-arg warning).
    pub fn variables_used(&self, escape: char) -> BTreeSet<String> {
        self.expandable_words()
            .into_iter()
            .flat_map(|w| variables_used(w, escape))
            .collect()
    }
}
