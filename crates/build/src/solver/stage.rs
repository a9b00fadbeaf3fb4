//! One stage: its base, its build args and their scope, and each instruction as a step that
//! makes a new image (from the cache when a step with the same key made one before).
//!
//! Scope of build args, as Docker's: a stage sees an arg only after an `ARG` declares it in
//! the stage (a meta arg, declared before the first `FROM`, gives its value to a later
//! `ARG NAME` without a default); `ENV` wins over `ARG` of the same name; the proxy args are
//! seen by `RUN` without a declaration and never written into the history.

use std::collections::BTreeSet;

use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};

use super::config::{self, go_quote_list, nop, nop_glued};
use super::copy_step::CopyFlags;
use super::plan::{Base, Plan};
use super::{Backend, BuildOptions, CopySource, Image, Output, SolveError};
use crate::instructions::{Command, Instruction, ShellOrExec};
use crate::platform::{is_proxy_arg, Platform};
use crate::shell_words::Lex;
use crate::Dockerfile;

/// What every stage of a build shares.
pub struct StageContext<'a> {
    pub df: &'a Dockerfile,
    pub opts: &'a BuildOptions,
    pub plan: &'a Plan,
    pub platform: &'a Platform,
    pub backend: &'a dyn Backend,
    pub out: &'a Output,
    /// The images of the stages built so far, by index.
    pub built: &'a [Option<Image>],
    pub total_steps: usize,
    /// Set when another stage failed: this one stops at its next step.
    pub abort: &'a std::sync::atomic::AtomicBool,
    /// `--cache-from` images (resolved).
    pub cache_from: &'a [Image],
}

/// A stage being built.
pub(super) struct State<'a> {
    pub(super) ctx: &'a StageContext<'a>,
    pub(super) image: Image,
    /// Declared args and their values (`None`: declared without one).
    pub(super) args: Vec<(String, Option<String>)>,
    /// Build args the stage declared (consumed, for the unused-args warning).
    pub(super) consumed: BTreeSet<String>,
    /// `CMD` was set in this stage (an `ENTRYPOINT` after it keeps it).
    pub(super) cmd_set: bool,
    pub(super) lex: Lex,
}

/// Builds stage `index`; returns its image and the build args it consumed.
pub fn build(
    ctx: &StageContext<'_>,
    index: usize,
    step: &mut usize,
) -> Result<(Image, BTreeSet<String>), SolveError> {
    let stage = ctx
        .df
        .stages
        .get(index)
        .ok_or_else(|| SolveError::Invalid(format!("no stage {index}")))?;
    *step += 1;
    ctx.out.step(*step, ctx.total_steps, &stage.original);
    let image = match ctx.plan.bases.get(&index) {
        Some(Base::Stage(j)) => ctx
            .built
            .get(*j)
            .cloned()
            .flatten()
            .ok_or_else(|| SolveError::Invalid(format!("stage {j} was not built")))?,
        Some(Base::Scratch) => Image::scratch(ctx.platform),
        Some(Base::Image(name)) => {
            let image = ctx.backend.image(name, ctx.opts.pull, ctx.out)?;
            check_platform(ctx, stage, name, &image)?;
            image
        }
        None => return Err(SolveError::Invalid(format!("stage {index} has no base"))),
    };
    if !image.id.is_empty() {
        ctx.out.arrow(&image.short_id());
    }
    let mut state = State {
        ctx,
        image,
        args: Vec::new(),
        consumed: BTreeSet::new(),
        cmd_set: false,
        lex: Lex::new(ctx.df.escape),
    };
    // The meta args a build gives count as consumed when a FROM uses them.
    for (name, _) in ctx.df.meta_arg_pairs() {
        if ctx.opts.build_args.contains_key(&name) {
            state.consumed.insert(name);
        }
    }
    state.run_triggers()?;
    for cmd in &stage.commands {
        if ctx.backend.cancelled() || ctx.abort.load(std::sync::atomic::Ordering::Relaxed) {
            return Err(SolveError::Cancelled);
        }
        *step += 1;
        ctx.out.step(*step, ctx.total_steps, &cmd.original);
        state.dispatch(cmd)?;
    }
    if index == ctx.plan.target && !ctx.opts.labels.is_empty() {
        let pairs: Vec<(String, String)> = ctx
            .opts
            .labels
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let text = pairs
            .iter()
            .map(|(k, v)| format!("{k}={}", config::go_quote(v)))
            .collect::<Vec<_>>()
            .join(" ");
        *step += 1;
        ctx.out
            .step(*step, ctx.total_steps, &format!("LABEL {text}"));
        state.label(&pairs)?;
    }
    Ok((state.image, state.consumed))
}

/// The digest that keys a step: its parent, and what it does.
pub(super) fn cache_key(parent: &Image, parts: &[&str]) -> String {
    let mut h = Sha256::new();
    h.update(b"berth-build-step-v1\0");
    h.update(parent.id.as_bytes());
    for p in parts {
        h.update(b"\0");
        h.update(p.as_bytes());
    }
    hex::encode(h.finalize())
}

pub(super) fn now() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}

impl State<'_> {
    /// The variables an instruction is expanded with: the args with a value, then the
    /// image's env (which wins).
    pub(super) fn env(&self) -> Vec<(String, String)> {
        let mut env: Vec<(String, String)> = self
            .args
            .iter()
            .filter_map(|(k, v)| Some((k.clone(), v.clone()?)))
            .collect();
        env.extend(config::env_pairs(&self.image.config));
        env
    }

    /// The args a `RUN` sees that the image's env does not set: `KEY=value`, sorted; the
    /// proxy args given to the build too, and whether each is to be hidden from the history.
    pub(super) fn run_args(&self) -> Vec<(String, bool)> {
        let env = config::env_pairs(&self.image.config);
        let in_env = |k: &str| env.iter().any(|(e, _)| e == k);
        let mut out: Vec<(String, bool)> = self
            .args
            .iter()
            .filter(|(k, _)| !in_env(k))
            .filter_map(|(k, v)| Some((format!("{k}={}", v.as_ref()?), false)))
            .collect();
        for (k, v) in &self.ctx.opts.build_args {
            if is_proxy_arg(k) && !self.args.iter().any(|(a, _)| a == k) && !in_env(k) {
                if let Some(v) = v {
                    out.push((format!("{k}={v}"), true));
                }
            }
        }
        out.sort();
        out
    }

    fn expand(&self, cmd: &Command) -> Result<Instruction, SolveError> {
        cmd.instruction
            .expand(&self.lex, &self.env())
            .map_err(|e| SolveError::Expand {
                word: cmd.original.clone(),
                message: e.to_string(),
            })
    }

    /// A step whose image has the config `next`: from the cache under `key` if there (and
    /// allowed), else from a `--cache-from` image that continues with it, else `make`'s image.
    pub(super) fn step(
        &mut self,
        key: Option<String>,
        next: &Value,
        make: impl FnOnce(&Self) -> Result<Image, SolveError>,
    ) -> Result<(), SolveError> {
        let out = self.ctx.out;
        if let Some(key) = key.as_deref().filter(|_| !self.ctx.opts.no_cache) {
            if let Some(hit) = self.ctx.backend.cache_get(key) {
                out.arrow("Using cache");
                out.arrow(&hit.short_id());
                self.image = hit;
                return Ok(());
            }
        }
        let from_cache = if self.ctx.opts.no_cache {
            None
        } else {
            super::cache_from::find(self.ctx.cache_from, &self.image.config, next)
        };
        let image = match from_cache {
            Some((source, layer)) => {
                out.arrow("Using cache");
                match layer {
                    Some(index) => {
                        self.ctx
                            .backend
                            .reuse_layer(&self.image, source, index, next)?
                    }
                    None => self.ctx.backend.set_config(&self.image, next)?,
                }
            }
            None => make(self)?,
        };
        if let Some(key) = &key {
            self.ctx.backend.cache_put(key, &image);
        }
        out.arrow(&image.short_id());
        self.image = image;
        Ok(())
    }

    /// A step that changes only the config: `change` applied, with a history entry saying
    /// `created_by`.
    pub(super) fn meta_step(
        &mut self,
        created_by: String,
        change: impl FnOnce(&mut Value),
    ) -> Result<(), SolveError> {
        let key = cache_key(&self.image, &["meta", &created_by]);
        let mut config = self.image.config.clone();
        change(&mut config);
        config::push_history(&mut config, &now(), &created_by, true);
        self.step(Some(key), &config, |s| {
            Ok(s.ctx.backend.set_config(&s.image, &config)?)
        })
    }

    fn dispatch(&mut self, cmd: &Command) -> Result<(), SolveError> {
        let instruction = self.expand(cmd)?;
        match instruction {
            Instruction::From(_) => Err(SolveError::Invalid("FROM inside a stage".into())),
            Instruction::Arg(args) => self.arg(&args),
            Instruction::Env(pairs) => {
                let text = pairs
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(" ");
                let created_by = nop(&self.image.config, &format!("ENV {text}"));
                self.meta_step(created_by, |c| {
                    for (k, v) in &pairs {
                        config::set_env(c, k, v);
                    }
                })
            }
            Instruction::Label(pairs) => self.label(&pairs),
            Instruction::Maintainer(m) => {
                let created_by = nop(&self.image.config, &format!("MAINTAINER {m}"));
                self.meta_step(created_by, |c| config::set_top(c, "author", json!(m)))
            }
            Instruction::Expose(ports) => {
                let keys = config::exposed_ports(&ports).map_err(SolveError::Invalid)?;
                let mut sorted = keys.clone();
                sorted.sort();
                let created_by = nop(&self.image.config, &format!("EXPOSE {}", sorted.join(" ")));
                self.meta_step(created_by, |c| {
                    let mut map = c["config"]["ExposedPorts"]
                        .as_object()
                        .cloned()
                        .unwrap_or_default();
                    for k in keys {
                        map.insert(k, json!({}));
                    }
                    config::set(c, "ExposedPorts", Value::Object(map));
                })
            }
            Instruction::Cmd(c) => {
                let argv = config::argv(&self.image.config, &c);
                let created_by = nop(&self.image.config, &format!("CMD {}", go_quote_list(&argv)));
                self.cmd_set = true;
                self.meta_step(created_by, |c| config::set(c, "Cmd", json!(argv)))
            }
            Instruction::Entrypoint(e) => {
                let argv = match &e {
                    ShellOrExec::Exec(v) if v.is_empty() => Vec::new(),
                    other => config::argv(&self.image.config, other),
                };
                let created_by = nop(
                    &self.image.config,
                    &format!("ENTRYPOINT {}", go_quote_list(&argv)),
                );
                let reset_cmd = !self.cmd_set;
                self.meta_step(created_by, |c| {
                    let value = if argv.is_empty() {
                        Value::Null
                    } else {
                        json!(argv)
                    };
                    config::set(c, "Entrypoint", value);
                    if reset_cmd {
                        config::set(c, "Cmd", Value::Null);
                    }
                })
            }
            Instruction::Volume(v) => {
                let created_by = nop(&self.image.config, &format!("VOLUME [{}]", v.join(" ")));
                self.meta_step(created_by, |c| {
                    let mut map = c["config"]["Volumes"]
                        .as_object()
                        .cloned()
                        .unwrap_or_default();
                    for path in v {
                        map.insert(path, json!({}));
                    }
                    config::set(c, "Volumes", Value::Object(map));
                })
            }
            Instruction::User(u) => {
                let created_by = nop(&self.image.config, &format!("USER {u}"));
                self.meta_step(created_by, |c| config::set(c, "User", json!(u)))
            }
            Instruction::Stopsignal(s) => {
                let created_by = nop(&self.image.config, &format!("STOPSIGNAL {s}"));
                self.meta_step(created_by, |c| config::set(c, "StopSignal", json!(s)))
            }
            Instruction::Shell(s) => {
                let created_by = nop(&self.image.config, &format!("SHELL [{}]", s.join(" ")));
                self.meta_step(created_by, |c| config::set(c, "Shell", json!(s)))
            }
            Instruction::Healthcheck(h) => {
                let value = config::healthcheck(&h);
                let created_by = nop(&self.image.config, &format!("HEALTHCHECK {value}"));
                self.meta_step(created_by, |c| {
                    // As the classic builder's commit merges configs: what the new check
                    // leaves unset (zero), the previous one gives (even under NONE).
                    let mut value = value;
                    if let (Some(prev), Some(new)) = (
                        c["config"]["Healthcheck"].as_object().cloned(),
                        value.as_object_mut(),
                    ) {
                        for (k, v) in prev {
                            new.entry(k).or_insert(v);
                        }
                    }
                    config::set(c, "Healthcheck", value)
                })
            }
            Instruction::Onbuild(trigger) => {
                let created_by = nop(&self.image.config, &format!("ONBUILD {trigger}"));
                self.meta_step(created_by, |c| {
                    let mut list = config::strings(c, "OnBuild");
                    list.push(trigger);
                    config::set(c, "OnBuild", json!(list));
                })
            }
            Instruction::Workdir(w) => self.workdir(&w),
            Instruction::Run(r) => self.run(r),
            Instruction::Copy(c) => {
                let source = match c.from.as_deref() {
                    Some(from) => CopySource::Image(self.copy_source_image(from)?),
                    None => CopySource::Context(self.ctx.opts.context.clone()),
                };
                self.copy(
                    "COPY",
                    source,
                    c.sources,
                    c.inline.into_iter().map(|i| (i.path, i.data)).collect(),
                    &c.dest,
                    CopyFlags {
                        chown: c.chown,
                        chmod: c.chmod,
                        add: false,
                        checksum: None,
                        parents: c.parents,
                        exclude: c.exclude,
                        link: c.link,
                    },
                )
            }
            Instruction::Add(a) => self.copy(
                "ADD",
                CopySource::Context(self.ctx.opts.context.clone()),
                a.sources,
                a.inline.into_iter().map(|i| (i.path, i.data)).collect(),
                &a.dest,
                CopyFlags {
                    chown: a.chown,
                    chmod: a.chmod,
                    add: true,
                    checksum: a.checksum,
                    parents: false,
                    exclude: a.exclude,
                    link: a.link,
                },
            ),
        }
    }

    fn arg(&mut self, args: &[(String, Option<String>)]) -> Result<(), SolveError> {
        let meta = &self.ctx.plan.meta_args;
        let mut texts = Vec::new();
        for (name, default) in args {
            let value = match self.ctx.opts.build_args.get(name) {
                Some(Some(v)) => Some(v.clone()),
                _ => default.clone().or_else(|| {
                    meta.iter()
                        .rev()
                        .find(|(k, _)| k == name)
                        .map(|(_, v)| v.clone())
                }),
            };
            if self.ctx.opts.build_args.contains_key(name) {
                self.consumed.insert(name.clone());
            }
            texts.push(match default {
                Some(d) => format!("{name}={d}"),
                None => name.clone(),
            });
            self.args.retain(|(k, _)| k != name);
            self.args.push((name.clone(), value));
        }
        let created_by = nop(&self.image.config, &format!("ARG {}", texts.join(" ")));
        self.meta_step(created_by, |_| {})
    }

    fn label(&mut self, pairs: &[(String, String)]) -> Result<(), SolveError> {
        let text = pairs
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(" ");
        let created_by = nop(&self.image.config, &format!("LABEL {text}"));
        self.meta_step(created_by, |c| {
            let mut map = c["config"]["Labels"]
                .as_object()
                .cloned()
                .unwrap_or_default();
            for (k, v) in pairs {
                map.insert(k.clone(), json!(v));
            }
            config::set(c, "Labels", Value::Object(map));
        })
    }

    fn workdir(&mut self, path: &str) -> Result<(), SolveError> {
        let current = self.image.config["config"]["WorkingDir"]
            .as_str()
            .unwrap_or("")
            .to_string();
        let dir = config::workdir(&current, path);
        let created_by = nop_glued(&self.image.config, &format!("WORKDIR {dir}"));
        let key = cache_key(&self.image, &["workdir", &created_by]);
        let mut config = self.image.config.clone();
        config::set(&mut config, "WorkingDir", json!(dir));
        config::push_history(&mut config, &now(), &created_by, false);
        self.step(Some(key), &config, |s| {
            Ok(s.ctx.backend.mkdir(&s.image, &dir, &config)?)
        })
    }

    /// The `ONBUILD` triggers of the base image, run as the first steps of the stage (and
    /// cleared from the stage's image).
    fn run_triggers(&mut self) -> Result<(), SolveError> {
        let triggers = config::strings(&self.image.config, "OnBuild");
        if triggers.is_empty() {
            return Ok(());
        }
        let n = triggers.len();
        self.ctx.out.stream(&format!(
            "# Executing {n} build trigger{}\n",
            if n == 1 { "" } else { "s" }
        ));
        config::set(&mut self.image.config, "OnBuild", Value::Null);
        for trigger in triggers {
            let text = format!("FROM scratch\n{trigger}\n");
            let df = crate::parse(&text).map_err(|e| SolveError::Invalid(e.to_string()))?;
            let cmds = df
                .stages
                .into_iter()
                .next()
                .map(|s| s.commands)
                .unwrap_or_default();
            for cmd in &cmds {
                self.dispatch(cmd)?;
            }
        }
        Ok(())
    }
}

/// The base image must be of the platform the stage asks for (`FROM --platform`, else the
/// build's `platform`), as dockerd checks a local image: Berth runs what the host runs.
fn check_platform(
    ctx: &StageContext<'_>,
    stage: &crate::Stage,
    name: &str,
    image: &Image,
) -> Result<(), SolveError> {
    let wanted = match &stage.platform {
        Some(p) => {
            let text = Lex::new(ctx.df.escape)
                .process_word(p, &ctx.plan.meta_args)
                .map_err(|e| SolveError::Expand {
                    word: p.clone(),
                    message: e.to_string(),
                })?;
            Platform::parse(&text).map_err(|e| SolveError::Invalid(e.to_string()))?
        }
        None => match &ctx.opts.platform {
            Some(p) => p.clone(),
            None => return Ok(()),
        },
    };
    let os = image.config["os"].as_str().unwrap_or("linux");
    let arch = image.config["architecture"].as_str().unwrap_or("");
    if arch.is_empty() || (os == wanted.os && arch == wanted.architecture) {
        return Ok(());
    }
    Err(SolveError::Invalid(format!(
        "image with reference {name} was found but does not match the specified platform: wanted {}/{}, actual: {os}/{arch}",
        wanted.os, wanted.architecture
    )))
}
