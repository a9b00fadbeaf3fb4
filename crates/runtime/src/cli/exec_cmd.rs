//! `berth-runtime exec`: flags to a complete `process`, then the library's exec.

use std::path::PathBuf;
use std::str::FromStr;

use anyhow::{anyhow, bail, Context, Result};
use berth_runtime::exec::{exec, ExecOptions};
use berth_runtime::Runtime;
use oci_spec::runtime::{Capability, Process};

#[derive(clap::Args, Debug)]
pub struct ExecArgs {
    #[arg(long = "console-socket")]
    console_socket: Option<PathBuf>,
    /// Working directory in the container.
    #[arg(long)]
    cwd: Option<PathBuf>,
    /// Environment variables to set (KEY=VALUE).
    #[arg(short, long)]
    env: Vec<String>,
    /// Allocate a pseudo-terminal.
    #[arg(short, long)]
    tty: bool,
    /// UID[:GID] to run as.
    #[arg(short, long)]
    user: Option<String>,
    /// Additional gids.
    #[arg(short = 'g', long = "additional-gids")]
    additional_gids: Vec<u32>,
    /// A JSON file with the whole process (overrides the other flags).
    #[arg(short, long)]
    process: Option<PathBuf>,
    /// Do not wait for the process.
    #[arg(short, long)]
    detach: bool,
    #[arg(long = "pid-file")]
    pid_file: Option<PathBuf>,
    /// Add a capability to the bounding, effective and permitted sets (as runc 1.2: not the
    /// inheritable one).
    #[arg(short, long)]
    cap: Vec<String>,
    /// Exec in a paused container too: the process runs once the container is resumed.
    #[arg(long = "ignore-paused")]
    ignore_paused: bool,
    /// Run in an existing sub-cgroup of the container: PATH for every hierarchy, or
    /// CONTROLLER[,CONTROLLER...]:PATH (cgroup v1; may be repeated).
    #[arg(long = "cgroup")]
    cgroup: Vec<String>,
    /// Set no_new_privs.
    #[arg(long = "no-new-privs")]
    no_new_privs: bool,
    #[arg(long = "preserve-fds", default_value_t = 0)]
    preserve_fds: u32,
    container_id: String,
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    command: Vec<String>,
}

fn build_process(rt: &Runtime, args: &ExecArgs) -> Result<Process> {
    if let Some(path) = &args.process {
        let data = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        let mut de = serde_json::Deserializer::from_slice(&data);
        return serde_path_to_error::deserialize(&mut de).map_err(|e| {
            anyhow!(
                "{}: invalid process at `{}`: {}",
                path.display(),
                e.path(),
                e.inner()
            )
        });
    }
    if args.command.is_empty() {
        bail!("exec: no command given; usage: berth-runtime exec [options] <container-id> <command> [args...]");
    }
    let spec = rt.config(&args.container_id)?;
    let mut process = spec.process().clone().unwrap_or_default();
    process.set_args(Some(args.command.clone()));
    process.set_terminal(Some(args.tty));
    process.set_console_size(None);
    let mut env = process.env().clone().unwrap_or_default();
    for kv in &args.env {
        let key = kv.split('=').next().unwrap_or_default();
        env.retain(|e| e.split('=').next() != Some(key));
        env.push(kv.clone());
    }
    process.set_env(Some(env));
    if let Some(cwd) = &args.cwd {
        process.set_cwd(cwd.clone());
    }
    if let Some(user) = &args.user {
        let (uid, gid) = match user.split_once(':') {
            Some((u, g)) => (u, Some(g)),
            None => (user.as_str(), None),
        };
        let u = process.user_mut();
        u.set_uid(
            uid.parse()
                .with_context(|| format!("invalid uid {uid:?}"))?,
        );
        if let Some(g) = gid {
            u.set_gid(g.parse().with_context(|| format!("invalid gid {g:?}"))?);
        }
    }
    if !args.additional_gids.is_empty() {
        process
            .user_mut()
            .set_additional_gids(Some(args.additional_gids.clone()));
    }
    if args.no_new_privs {
        process.set_no_new_privileges(Some(true));
    }
    if !args.cap.is_empty() {
        let mut caps = process.capabilities().clone().unwrap_or_default();
        for name in &args.cap {
            let bare = name.trim_start_matches("CAP_");
            let cap =
                Capability::from_str(bare).map_err(|_| anyhow!("unknown capability {name:?}"))?;
            let add = |set: &Option<oci_spec::runtime::Capabilities>| {
                let mut set = set.clone().unwrap_or_default();
                set.insert(cap);
                Some(set)
            };
            caps.set_bounding(add(caps.bounding()));
            caps.set_effective(add(caps.effective()));
            caps.set_permitted(add(caps.permitted()));
        }
        process.set_capabilities(Some(caps));
    }
    Ok(process)
}

pub fn run(rt: &Runtime, args: ExecArgs) -> Result<i32> {
    // An unknown id is "does not exist", not a missing config.json of the flags' defaults.
    rt.load(&args.container_id)?;
    let process = build_process(rt, &args)?;
    let opts = ExecOptions {
        process,
        console_socket: args.console_socket.clone(),
        pid_file: args.pid_file.clone(),
        preserve_fds: args.preserve_fds,
        ignore_paused: args.ignore_paused,
        sub_cgroups: sub_cgroups(&args.cgroup)?,
    };
    if !args.detach {
        super::wait::block_forwarded_signals()?;
    }
    let pid = exec(rt, &args.container_id, &opts)?;
    if args.detach {
        return Ok(0);
    }
    super::wait::wait_forwarding(pid)
}

/// Parses `--cgroup` values as runc does: one bare PATH (all hierarchies), or any number of
/// `CONTROLLER[,CONTROLLER...]:PATH`, each controller named once.
fn sub_cgroups(args: &[String]) -> Result<Vec<(Vec<String>, PathBuf)>> {
    let mut out: Vec<(Vec<String>, PathBuf)> = Vec::new();
    let mut seen: Vec<String> = Vec::new();
    for arg in args {
        let Some((controllers, path)) = arg.split_once(':') else {
            if args.len() != 1 {
                bail!("invalid --cgroup argument: {arg} (missing <controller>: prefix)");
            }
            out.push((Vec::new(), PathBuf::from(arg)));
            continue;
        };
        let mut names = Vec::new();
        for name in controllers.split(',') {
            if name.is_empty() {
                bail!("invalid --cgroup argument: {arg} (empty <controller> prefix)");
            }
            if seen.iter().any(|s| s == name) {
                bail!("invalid --cgroup argument(s): controller {name} specified multiple times");
            }
            seen.push(name.to_string());
            names.push(name.to_string());
        }
        out.push((names, PathBuf::from(path)));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cgroup_arguments_as_runc_parses_them() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(
            sub_cgroups(&s(&["sub"])).unwrap(),
            vec![(vec![], PathBuf::from("sub"))]
        );
        assert_eq!(
            sub_cgroups(&s(&["cpu,memory:a", "pids:b"])).unwrap(),
            vec![
                (s(&["cpu", "memory"]), PathBuf::from("a")),
                (s(&["pids"]), PathBuf::from("b"))
            ]
        );
        assert!(sub_cgroups(&s(&["a", "b"])).is_err());
        assert!(sub_cgroups(&s(&[":a"])).is_err());
        assert!(sub_cgroups(&s(&["cpu:a", "cpu:b"])).is_err());
    }
}
