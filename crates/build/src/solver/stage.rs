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
use super::plan::{Base, Plan};
use super::{
    Backend, BuildOptions, CopyRequest, CopySource, Image, Output, RunRequest, SolveError,
};
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
}

/// A stage being built.
struct State<'a> {
    ctx: &'a StageContext<'a>,
    image: Image,
    /// Declared args and their values (`None`: declared without one).
    args: Vec<(String, Option<String>)>,
    /// Build args the stage declared (consumed, for the unused-args warning).
    consumed: BTreeSet<String>,
    /// `CMD` was set in this stage (an `ENTRYPOINT` after it keeps it).
    cmd_set: bool,
    lex: Lex,
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
        Some(Base::Image(name)) => ctx.backend.image(name, ctx.opts.pull, ctx.out)?,
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
fn cache_key(parent: &Image, parts: &[&str]) -> String {
    let mut h = Sha256::new();
    h.update(b"berth-build-step-v1\0");
    h.update(parent.id.as_bytes());
    for p in parts {
        h.update(b"\0");
        h.update(p.as_bytes());
    }
    hex::encode(h.finalize())
}

fn now() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}

impl State<'_> {
    /// The variables an instruction is expanded with: the args with a value, then the
    /// image's env (which wins).
    fn env(&self) -> Vec<(String, String)> {
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
    fn run_args(&self) -> Vec<(String, bool)> {
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

    /// A step: from the cache under `key` if there (and allowed), else `make`'s image.
    fn step(
        &mut self,
        key: Option<String>,
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
        let image = make(self)?;
        if let Some(key) = &key {
            self.ctx.backend.cache_put(key, &image);
        }
        out.arrow(&image.short_id());
        self.image = image;
        Ok(())
    }

    /// A step that changes only the config: `change` applied, with a history entry saying
    /// `created_by`.
    fn meta_step(
        &mut self,
        created_by: String,
        change: impl FnOnce(&mut Value),
    ) -> Result<(), SolveError> {
        let key = cache_key(&self.image, &["meta", &created_by]);
        let mut config = self.image.config.clone();
        change(&mut config);
        config::push_history(&mut config, &now(), &created_by, true);
        self.step(Some(key), |s| {
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
                self.meta_step(created_by, |c| c["author"] = json!(m))
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
        self.step(Some(key), |s| {
            Ok(s.ctx.backend.mkdir(&s.image, &dir, &config)?)
        })
    }

    fn run(&mut self, r: crate::instructions::Run) -> Result<(), SolveError> {
        let cmd = heredoc_command(&r)?;
        for m in &r.mounts {
            if matches!(
                m.mount_type,
                crate::instructions::MountType::Secret | crate::instructions::MountType::Ssh
            ) {
                return Err(SolveError::Invalid(format!(
                    "RUN --mount=type={} is not supported by this builder yet",
                    m.mount_type.as_str()
                )));
            }
        }
        let mount_images = r
            .mounts
            .iter()
            .map(|m| {
                m.from
                    .as_deref()
                    .map(|f| self.copy_source_image(f))
                    .transpose()
            })
            .collect::<Result<Vec<_>, _>>()?;
        let argv = config::argv(&self.image.config, &cmd);
        let args = self.run_args();
        let shown: Vec<&str> = args
            .iter()
            .filter(|(_, hidden)| !hidden)
            .map(|(a, _)| a.as_str())
            .collect();
        let created_by = if shown.is_empty() {
            argv.join(" ")
        } else {
            format!("|{} {} {}", shown.len(), shown.join(" "), argv.join(" "))
        };
        let mut config = self.image.config.clone();
        config::push_history(&mut config, &now(), &created_by, false);
        let network = r.network.or(self.ctx.opts.network);
        let mut mounts: Vec<String> = r.mounts.iter().map(|m| m.spec.clone()).collect();
        // A bind mount's content is an input: an image's id, or the context's files.
        for (m, image) in r.mounts.iter().zip(&mount_images) {
            match (image, m.mount_type) {
                (Some(img), _) => mounts.push(img.id.clone()),
                (None, crate::instructions::MountType::Bind) => {
                    let source = m.source.clone().unwrap_or_else(|| ".".into());
                    let sum = crate::checksum::checksum(
                        &self.ctx.opts.context,
                        std::slice::from_ref(&source),
                        &[],
                        None,
                    )
                    .map_err(|e| SolveError::Invalid(format!("RUN --mount failed: {e}")))?;
                    mounts.push(sum.digest);
                }
                _ => {}
            }
        }
        let key = cache_key(
            &self.image,
            &[
                "run",
                &created_by,
                &format!("{network:?}"),
                &mounts.join("\n"),
            ],
        );
        let mut env = config::strings(&self.image.config, "Env");
        env.extend(args.into_iter().map(|(a, _)| a));
        let req = RunRequest {
            argv: argv.clone(),
            env,
            user: self.image.config["config"]["User"]
                .as_str()
                .unwrap_or("")
                .to_string(),
            workdir: self.image.config["config"]["WorkingDir"]
                .as_str()
                .filter(|w| !w.is_empty())
                .unwrap_or("/")
                .to_string(),
            network,
            mounts: r.mounts,
            mount_images,
            context: self.ctx.opts.context.clone(),
            config,
        };
        let shell_text = match &cmd {
            ShellOrExec::Shell(_) => argv.join(" "),
            ShellOrExec::Exec(v) => go_quote_list(v),
        };
        self.step(Some(key), |s| {
            s.ctx
                .backend
                .run(&s.image, &req, s.ctx.out)
                .map_err(|e| match e.code {
                    Some(code) => SolveError::NonZero {
                        command: shell_text,
                        code,
                    },
                    None => SolveError::Backend(e),
                })
        })
    }

    /// The image `COPY --from=` names: a stage (by name or index) or an image.
    fn copy_source_image(&self, from: &str) -> Result<Image, SolveError> {
        let lower = from.to_ascii_lowercase();
        let stages = &self.ctx.df.stages;
        let named = stages
            .iter()
            .position(|s| s.name.as_deref() == Some(lower.as_str()));
        let index = match (named, from.parse::<usize>()) {
            (Some(i), _) => Some(i),
            (None, Ok(i)) if i < stages.len() => Some(i),
            (None, Ok(_)) => {
                return Err(SolveError::UnknownFrom(
                    from.into(),
                    "index out of bounds".into(),
                ))
            }
            (None, Err(_)) => None,
        };
        match index {
            Some(i) => self
                .ctx
                .built
                .get(i)
                .cloned()
                .flatten()
                .ok_or_else(|| SolveError::UnknownFrom(from.into(), "stage not built".into())),
            None => self
                .ctx
                .backend
                .image(from, false, self.ctx.out)
                .map_err(|e| SolveError::UnknownFrom(from.into(), e.message)),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn copy(
        &mut self,
        name: &str,
        source: CopySource,
        sources: Vec<String>,
        inline: Vec<(String, String)>,
        dest: &str,
        flags: CopyFlags,
    ) -> Result<(), SolveError> {
        let workdir = self.image.config["config"]["WorkingDir"]
            .as_str()
            .unwrap_or("")
            .to_string();
        let dest_is_dir = dest.ends_with('/') || sources.len() + inline.len() > 1;
        let mut abs = config::workdir(&workdir, dest);
        if dest_is_dir && !abs.ends_with('/') {
            abs.push('/');
        }
        if !inline.is_empty() && !sources.is_empty() {
            return Err(SolveError::Invalid(format!(
                "{name} of heredocs and files together is not supported by this builder yet"
            )));
        }
        let remote = sources
            .iter()
            .any(|s| s.starts_with("http://") || s.starts_with("https://"));
        if flags.checksum.is_some() && !remote {
            return Err(SolveError::Invalid(
                "checksum can't be specified for non-HTTP(S) sources".into(),
            ));
        }
        if remote {
            return Err(SolveError::Invalid(format!(
                "{name} from a URL is not supported by this builder yet"
            )));
        }
        // What the step reads: for an image or a stage, its id and the paths; for the
        // context, the checksum of the files (content, mode, owner; not times).
        let what = match &source {
            _ if !inline.is_empty() => {
                let mut h = Sha256::new();
                for (file, data) in &inline {
                    h.update(file.as_bytes());
                    h.update(b"\0");
                    h.update(data.as_bytes());
                    h.update(b"\0");
                }
                format!("file:{}", hex::encode(h.finalize()))
            }
            CopySource::Image(img) => format!("{}:{}", img.id, sources.join(" ")),
            CopySource::Context(dir) => {
                let sum = crate::checksum::checksum(dir, &sources, &flags.exclude, None)
                    .map_err(|e| SolveError::Invalid(format!("{name} failed: {e}")))?;
                let kind = if sources.len() == 1 { "file" } else { "multi" };
                format!(
                    "{kind}:{}",
                    sum.digest.strip_prefix("sha256:").unwrap_or(&sum.digest)
                )
            }
        };
        let created_by = nop_glued(&self.image.config, &format!("{name} {what} in {abs} "));
        let mut config = self.image.config.clone();
        config::push_history(&mut config, &now(), &created_by, false);
        let key = Some(cache_key(
            &self.image,
            &[
                "copy",
                &created_by,
                flags.chown.as_deref().unwrap_or(""),
                flags.chmod.as_deref().unwrap_or(""),
                &flags.parents.to_string(),
                &flags.exclude.join("\n"),
                &flags.add.to_string(),
            ],
        ));
        let req = CopyRequest {
            source,
            sources,
            inline,
            dest: abs,
            dest_is_dir,
            chown: flags.chown,
            chmod: flags.chmod,
            add: flags.add,
            checksum: flags.checksum,
            parents: flags.parents,
            exclude: flags.exclude,
            config,
        };
        self.step(key, |s| {
            s.ctx
                .backend
                .copy(&s.image, &req)
                .map_err(|e| SolveError::Invalid(format!("{name} failed: {e}")))
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

/// The flags of a `COPY` or `ADD`.
struct CopyFlags {
    chown: Option<String>,
    chmod: Option<String>,
    add: bool,
    checksum: Option<String>,
    parents: bool,
    exclude: Vec<String>,
}

/// The command of a `RUN` with heredocs, as BuildKit makes it: a lone `<<EOF` runs its content
/// as the script; otherwise the line and the heredocs, as written, go to the shell together
/// (which then reads them as its own here-documents).
fn heredoc_command(r: &crate::instructions::Run) -> Result<ShellOrExec, SolveError> {
    if r.heredocs.is_empty() {
        return Ok(r.cmd.clone());
    }
    let ShellOrExec::Shell(line) = &r.cmd else {
        return Err(SolveError::Invalid(
            "heredocs are only supported in the shell form of RUN".into(),
        ));
    };
    if let [only] = r.heredocs.as_slice() {
        let marker = line
            .trim()
            .trim_start_matches("<<")
            .trim_start_matches('-')
            .trim_matches(|c| c == '"' || c == '\'');
        if marker == only.name {
            return Ok(ShellOrExec::Shell(only.chomped_content()));
        }
    }
    let mut script = format!("{line}\n");
    for h in &r.heredocs {
        script.push_str(&h.content);
        script.push_str(&h.name);
        script.push('\n');
    }
    Ok(ShellOrExec::Shell(script))
}
