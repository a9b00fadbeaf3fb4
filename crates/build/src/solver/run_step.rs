//! `RUN` steps: the command (heredocs as BuildKit runs them), the args it sees and its
//! history text, its mounts, and a cache key from all of them.

use super::config::{self, go_quote_list};
use super::stage::{cache_key, now, State};
use super::{RunRequest, SolveError};
use crate::instructions::ShellOrExec;

impl State<'_> {
    pub(super) fn run(&mut self, r: crate::instructions::Run) -> Result<(), SolveError> {
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
                        self.ctx.opts.context.source(),
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
        self.step(Some(key), &req.config, |s| {
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
