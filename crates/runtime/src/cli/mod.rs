//! The command line: runc's commands, flags, output and exit codes.

/// `println!` that reports a failed write (a full disk, a closed pipe) instead of panicking.
macro_rules! out {
    ($($arg:tt)*) => {
        writeln!(std::io::stdout().lock(), $($arg)*).context("writing to stdout")?
    };
}

mod checkpoint_cmd;
mod exec_cmd;
mod features;
mod log;
mod tty_relay;
mod update_cmd;
mod wait;

use std::io::Write;
use std::path::PathBuf;

use anyhow::{anyhow, bail, Context, Result};
use berth_runtime::{CreateOptions, Runtime};
use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "berth-runtime",
    version,
    about = "Berth's OCI runtime (runc-compatible)"
)]
struct Cli {
    /// Root directory for the state of containers.
    #[arg(long, global = true, default_value = "/run/berth-runtime")]
    root: PathBuf,
    /// Write errors (and with --debug, progress) to this file instead of only stderr.
    #[arg(long, global = true)]
    log: Option<PathBuf>,
    /// Format of the log: text or json.
    #[arg(long = "log-format", global = true, default_value = "text")]
    log_format: log::Format,
    /// Log what the runtime does.
    #[arg(long, global = true)]
    debug: bool,
    /// Accepted for compatibility; the systemd cgroup driver is not supported.
    #[arg(long = "systemd-cgroup", global = true)]
    systemd_cgroup: bool,
    /// Accepted for compatibility with runc's --rootless auto|true|false.
    #[arg(long = "rootless", id = "global_rootless")]
    rootless: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args, Debug)]
struct CreateArgs {
    /// Path to the bundle directory.
    #[arg(short, long, default_value = ".")]
    bundle: PathBuf,
    /// Unix socket to which the pseudo-terminal's master is sent.
    #[arg(long = "console-socket")]
    console_socket: Option<PathBuf>,
    /// File to write the pid of the container's process to.
    #[arg(long = "pid-file")]
    pid_file: Option<PathBuf>,
    /// Use chroot instead of pivot_root (for ramfs roots).
    #[arg(long = "no-pivot")]
    no_pivot: bool,
    /// Accepted for compatibility: no session keyring is created.
    #[arg(long = "no-new-keyring")]
    no_new_keyring: bool,
    /// Pass this many extra descriptors (from 3 up) to the container.
    #[arg(long = "preserve-fds", default_value_t = 0)]
    preserve_fds: u32,
    container_id: String,
}

impl CreateArgs {
    fn options(&self, foreground: bool) -> CreateOptions {
        CreateOptions {
            foreground,
            bundle: self.bundle.clone(),
            console_socket: self.console_socket.clone(),
            pid_file: self.pid_file.clone(),
            no_pivot: self.no_pivot,
            preserve_fds: self.preserve_fds,
        }
    }
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Create a container, ready to be started.
    Create(CreateArgs),
    /// Run the program of a created container.
    Start { container_id: String },
    /// Create and start a container, and wait for it unless detached.
    Run {
        #[command(flatten)]
        create: CreateArgs,
        /// Do not wait for the container's program.
        #[arg(short, long)]
        detach: bool,
        /// Keep the container's state after it exits.
        #[arg(long)]
        keep: bool,
    },
    /// Print the state of a container as JSON.
    State { container_id: String },
    /// Send a signal (default SIGTERM) to a container's init.
    Kill {
        /// Send the signal to every process of the container.
        #[arg(short, long)]
        all: bool,
        container_id: String,
        #[arg(default_value = "SIGTERM")]
        signal: String,
    },
    /// Delete a stopped container (--force: kill it first).
    Delete {
        #[arg(short, long)]
        force: bool,
        container_id: String,
    },
    /// List containers.
    List {
        #[arg(short, long, default_value = "table")]
        format: String,
        /// Print only the ids.
        #[arg(short, long)]
        quiet: bool,
    },
    /// Show the processes of a container.
    Ps {
        #[arg(short, long, default_value = "table")]
        format: String,
        container_id: String,
        /// Options for ps(1) (default -ef).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        ps_args: Vec<String>,
    },
    /// Freeze every process of a container.
    Pause { container_id: String },
    /// Change the resource limits of a container.
    Update(update_cmd::UpdateArgs),
    /// Thaw a paused container.
    Resume { container_id: String },
    /// Print resource usage and OOM events of a container.
    Events {
        /// Print the statistics once and exit.
        #[arg(long)]
        stats: bool,
        /// Interval between statistics, e.g. 5s or 500ms.
        #[arg(long, default_value = "5s")]
        interval: String,
        container_id: String,
    },
    /// Print the features this runtime implements (features.md of the runtime spec).
    Features,
    /// Write a default config.json.
    Spec {
        #[arg(short, long, default_value = ".")]
        bundle: PathBuf,
        /// Write a configuration for a rootless container.
        #[arg(long = "rootless", id = "spec_rootless")]
        rootless: bool,
    },
    /// Run a new process in a running container.
    Exec(exec_cmd::ExecArgs),
    /// Checkpoint a running container with criu.
    Checkpoint(checkpoint_cmd::CheckpointArgs),
    /// Restore a container from a checkpoint with criu.
    Restore(checkpoint_cmd::RestoreArgs),
}

pub fn main() -> i32 {
    let cli = Cli::parse();
    let logger = log::Logger::new(cli.log.clone(), cli.log_format, cli.debug);
    match run(cli, &logger) {
        Ok(code) => code,
        Err(e) => {
            logger.error(&message(&e));
            1
        }
    }
}

fn run(cli: Cli, logger: &log::Logger) -> Result<i32> {
    if cli.systemd_cgroup {
        bail!("the systemd cgroup driver is not supported");
    }
    if matches!(
        cli.command,
        Command::Create(_) | Command::Run { .. } | Command::Exec(_)
    ) {
        berth_runtime::readonly_exe::ensure()?;
    }
    let rt = Runtime::new(&cli.root);
    logger.debug(&format!("{:?}", cli.command));
    match cli.command {
        Command::Create(args) => {
            rt.create(&args.container_id, &args.options(false))?;
        }
        Command::Start { container_id } => rt.start(&container_id)?,
        Command::Run {
            create,
            detach,
            keep,
        } => {
            let launched = rt.create_and_start(&create.container_id, &create.options(!detach))?;
            if detach {
                return Ok(0);
            }
            let code = match launched.console {
                Some(console) => tty_relay::relay(&console, launched.pid)?,
                None => wait::wait_forwarding(launched.pid)?,
            };
            if !keep {
                rt.delete(&create.container_id, true)?;
            }
            return Ok(code);
        }
        Command::State { container_id } => {
            let state = rt.state(&container_id)?;
            out!("{}", serde_json::to_string_pretty(&state)?);
        }
        Command::Kill {
            all,
            container_id,
            signal,
        } => rt.kill(&container_id, parse_signal(&signal)?, all)?,
        Command::Delete {
            force,
            container_id,
        } => rt.delete(&container_id, force)?,
        Command::List { format, quiet } => list(&rt, &format, quiet)?,
        Command::Ps {
            format,
            container_id,
            ps_args,
        } => ps(&rt, &container_id, &format, &ps_args)?,
        Command::Pause { container_id } => rt.pause(&container_id)?,
        Command::Update(args) => update_cmd::run(&rt, args)?,
        Command::Resume { container_id } => rt.resume(&container_id)?,
        Command::Events {
            stats,
            interval,
            container_id,
        } => events(&rt, &container_id, stats, &interval)?,
        Command::Spec { bundle, rootless } => {
            let path = bundle.join("config.json");
            if path.exists() {
                bail!("File {} exists. Remove it first", path.display());
            }
            let spec = berth_runtime::spec::default_spec(rootless);
            std::fs::write(&path, serde_json::to_string_pretty(&spec)?)
                .with_context(|| format!("writing {}", path.display()))?;
        }
        Command::Exec(args) => return exec_cmd::run(&rt, args),
        Command::Checkpoint(args) => return checkpoint_cmd::checkpoint(&rt, args),
        Command::Restore(args) => return checkpoint_cmd::restore(&rt, args),
        Command::Features => out!("{}", serde_json::to_string_pretty(&features::document())?),
    }
    Ok(0)
}

/// The error and its causes, `outer: inner`, leaving out a cause whose text the message already
/// holds (the library's messages name their cause themselves).
fn message(e: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in e.chain() {
        let part = cause.to_string();
        if !text.contains(&part) {
            if !text.is_empty() {
                text.push_str(": ");
            }
            text.push_str(&part);
        }
    }
    text
}

/// Parses `KILL`, `SIGKILL` or `9`.
pub fn parse_signal(s: &str) -> Result<nix::sys::signal::Signal> {
    use std::str::FromStr;
    if let Ok(n) = s.parse::<i32>() {
        return nix::sys::signal::Signal::try_from(n).map_err(|_| anyhow!("invalid signal {s:?}"));
    }
    let upper = s.to_ascii_uppercase();
    let name = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    nix::sys::signal::Signal::from_str(&name).map_err(|_| anyhow!("invalid signal {s:?}"))
}

fn list(rt: &Runtime, format: &str, quiet: bool) -> Result<()> {
    let states = rt.list()?;
    let mut out = std::io::stdout().lock();
    if quiet {
        for s in &states {
            writeln!(out, "{}", s.id)?;
        }
        return Ok(());
    }
    match format {
        "json" => writeln!(out, "{}", serde_json::to_string(&states)?)?,
        "table" => {
            let rows: Vec<[String; 6]> = states
                .iter()
                .map(|s| {
                    [
                        s.id.clone(),
                        s.pid.to_string(),
                        s.status.to_string(),
                        s.bundle.display().to_string(),
                        s.created.clone(),
                        if s.owner.is_empty() {
                            "root".into()
                        } else {
                            s.owner.clone()
                        },
                    ]
                })
                .collect();
            let header = ["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"].map(String::from);
            let mut widths = header.clone().map(|h| h.len());
            for row in &rows {
                for (w, cell) in widths.iter_mut().zip(row) {
                    *w = (*w).max(cell.len());
                }
            }
            for row in std::iter::once(&header).chain(&rows) {
                let line: Vec<String> = row
                    .iter()
                    .zip(widths)
                    .map(|(cell, w)| format!("{cell:<w$}"))
                    .collect();
                writeln!(out, "{}", line.join("   ").trim_end())?;
            }
        }
        other => bail!("invalid format option {other:?}"),
    }
    Ok(())
}

fn ps(rt: &Runtime, id: &str, format: &str, ps_args: &[String]) -> Result<()> {
    let pids = rt.pids(id)?;
    match format {
        "json" => out!("{}", serde_json::to_string(&pids)?),
        "table" => {
            let args: Vec<String> = if ps_args.is_empty() {
                vec!["-ef".into()]
            } else {
                ps_args.to_vec()
            };
            let output = std::process::Command::new("ps")
                .args(&args)
                .output()
                .context("running ps")?;
            if !output.status.success() {
                bail!("ps: {}", String::from_utf8_lossy(&output.stderr).trim());
            }
            let text = String::from_utf8_lossy(&output.stdout);
            let mut lines = text.lines();
            let header = lines.next().unwrap_or_default();
            let pid_col = header
                .split_whitespace()
                .position(|h| h == "PID")
                .ok_or_else(|| anyhow!("couldn't find PID field in ps output"))?;
            out!("{header}");
            for line in lines {
                let pid = line
                    .split_whitespace()
                    .nth(pid_col)
                    .and_then(|p| p.parse::<i32>().ok());
                if pid.is_some_and(|p| pids.contains(&p)) {
                    out!("{line}");
                }
            }
        }
        other => bail!("invalid format option {other:?}"),
    }
    Ok(())
}

fn parse_interval(s: &str) -> Result<std::time::Duration> {
    let (num, unit) = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .map(|i| s.split_at(i))
        .unwrap_or((s, "s"));
    let n: f64 = num.parse().map_err(|_| anyhow!("invalid interval {s:?}"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        _ => bail!("invalid interval {s:?}"),
    };
    Ok(std::time::Duration::from_secs_f64(secs))
}

fn events(rt: &Runtime, id: &str, once: bool, interval: &str) -> Result<()> {
    let interval = parse_interval(interval)?;
    let record = rt.load(id)?;
    let cgroup = rt.cgroup(&record)?;
    let mut ooms = cgroup.oom_kill_count().unwrap_or(0);
    loop {
        let stats = rt.stats(id)?;
        let event = serde_json::json!({"type": "stats", "id": id, "data": stats});
        out!("{event}");
        if once {
            return Ok(());
        }
        let deadline = std::time::Instant::now() + interval;
        while std::time::Instant::now() < deadline {
            let now = cgroup.oom_kill_count().unwrap_or(ooms);
            if now > ooms {
                ooms = now;
                out!("{}", serde_json::json!({"type": "oom", "id": id}));
            }
            if rt.status(&record) == berth_runtime::Status::Stopped {
                // An OOM kill is often what stopped it: report it before leaving.
                if cgroup.oom_kill_count().unwrap_or(ooms) > ooms {
                    out!("{}", serde_json::json!({"type": "oom", "id": id}));
                }
                return Ok(());
            }
            std::thread::sleep(std::time::Duration::from_millis(100).min(interval));
        }
    }
}
