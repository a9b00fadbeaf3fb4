//! A foreign OCI runtime (runc, crun, ...) driven through its runc-compatible command line:
//! `RUNTIME [ARGS] --root ROOT --log LOG --log-format json COMMAND ...`, as containerd's shims
//! drive runc. Each runtime has a root of its own (state directories never clash), and never
//! `--systemd-cgroup`: the engine's `cgroupsPath` is a cgroupfs path.
//!
//! Errors are the runtime's own words, as JSON lines (`{"level":"error","msg":...}`): on the
//! command's stderr, or, for `create` and `exec`, whose stdio is the container's, in a `--log`
//! file, read back from where it stood before the command.

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::stdio::ChildStdio;

/// How long one command of the runtime may take (a `create` or `delete --force` included).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum OciCliError {
    #[error("running {program}: {source}")]
    Spawn {
        program: String,
        source: std::io::Error,
    },
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    /// The runtime's message, with dockerd's words before it (`OCI runtime create failed: runc
    /// create failed: unable to start container process: ...`).
    #[error("OCI runtime {command} failed: {message}")]
    Failed {
        runtime: String,
        command: &'static str,
        message: String,
    },
    #[error("{runtime} {command} did not finish within {secs} s")]
    Timeout {
        runtime: String,
        command: &'static str,
        secs: u64,
    },
    #[error("{runtime} {command}: {message}")]
    Output {
        runtime: String,
        command: &'static str,
        message: String,
    },
}

fn io_err(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> OciCliError {
    let what = what.into();
    move |source| OciCliError::Io { what, source }
}

/// One foreign runtime: its binary, the arguments that go before every command (daemon.json's
/// `runtimeArgs`), its state root, and the log of `create` and `exec` (none: those commands'
/// messages are lost, the others' come from their stderr).
#[derive(Debug, Clone)]
pub struct OciCli {
    pub path: PathBuf,
    pub args: Vec<String>,
    pub root: PathBuf,
    pub log: Option<PathBuf>,
}

impl OciCli {
    pub fn new(path: &Path, args: &[String], root: &Path, log: Option<&Path>) -> OciCli {
        OciCli {
            path: path.to_path_buf(),
            args: args.to_vec(),
            root: root.to_path_buf(),
            log: log.map(Path::to_path_buf),
        }
    }

    /// The runtime's name in messages: its file name (`runc`).
    pub fn name(&self) -> String {
        self.path.file_name().map_or_else(
            || self.path.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        )
    }

    /// The command line up to `sub`; the log file only where the stdio is not ours.
    fn command(&self, sub: &str, log: bool) -> Command {
        let mut cmd = Command::new(&self.path);
        cmd.args(&self.args).arg("--root").arg(&self.root);
        if let Some(path) = self.log.as_ref().filter(|_| log) {
            cmd.arg("--log").arg(path);
        }
        cmd.arg("--log-format").arg("json").arg(sub);
        cmd
    }

    /// Runs `cmd` to its end (bounded), with `stdio` as its 0/1/2 (kept by nothing else after)
    /// or null/piped/piped; its stdout when asked. A failure carries the runtime's message.
    fn run(
        &self,
        command: &'static str,
        mut cmd: Command,
        stdio: Option<ChildStdio>,
        want_stdout: bool,
    ) -> Result<Vec<u8>, OciCliError> {
        let captured = stdio.is_none();
        let log = self.log.as_deref().filter(|_| !captured);
        let log_start = log
            .and_then(|l| std::fs::metadata(l).ok())
            .map_or(0, |m| m.len());
        match stdio {
            Some(s) => {
                cmd.stdin(Stdio::from(s.stdin))
                    .stdout(Stdio::from(s.stdout))
                    .stderr(Stdio::from(s.stderr));
            }
            None => {
                cmd.stdin(Stdio::null())
                    .stdout(if want_stdout {
                        Stdio::piped()
                    } else {
                        Stdio::null()
                    })
                    .stderr(Stdio::piped());
            }
        }
        let mut child = cmd.spawn().map_err(|source| OciCliError::Spawn {
            program: self.path.display().to_string(),
            source,
        })?;
        let (status, stdout, stderr) = self.wait(command, &mut child, captured)?;
        if status.success() {
            return Ok(stdout);
        }
        let message = log
            .and_then(|l| last_error_in_file(l, log_start))
            .or_else(|| last_error(&stderr))
            .or_else(|| {
                let text = String::from_utf8_lossy(&stderr).trim().to_string();
                (!text.is_empty()).then_some(text)
            })
            .unwrap_or_else(|| status.to_string());
        Err(OciCliError::Failed {
            runtime: self.name(),
            command,
            message,
        })
    }

    /// Waits (bounded) for `child`, then reads what it left in its pipes: a message, a state,
    /// far below a pipe's capacity (a runtime that fills one is stuck, and killed at the limit).
    fn wait(
        &self,
        command: &'static str,
        child: &mut Child,
        captured: bool,
    ) -> Result<(ExitStatus, Vec<u8>, Vec<u8>), OciCliError> {
        let deadline = Instant::now() + COMMAND_TIMEOUT;
        let mut pause = Duration::from_millis(1);
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) if Instant::now() >= deadline => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(OciCliError::Timeout {
                        runtime: self.name(),
                        command,
                        secs: COMMAND_TIMEOUT.as_secs(),
                    });
                }
                Ok(None) => {
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_millis(20));
                }
                Err(e) => return Err(io_err(format!("waiting for {}", self.name()))(e)),
            }
        };
        let drain = |pipe: Option<&mut dyn Read>| {
            let mut buf = Vec::new();
            if let Some(p) = pipe {
                let _ = p.take(1 << 20).read_to_end(&mut buf);
            }
            buf
        };
        let stdout = drain(child.stdout.as_mut().map(|p| p as &mut dyn Read));
        let stderr = match captured {
            true => drain(child.stderr.as_mut().map(|p| p as &mut dyn Read)),
            false => Vec::new(),
        };
        Ok((status, stdout, stderr))
    }

    /// `create --bundle DIR --pid-file F [--console-socket S] ID`; returns the init's pid. The
    /// init inherits `stdio` (no console socket) and is left as an orphan when the runtime
    /// exits: the nearest subreaper takes it.
    pub fn create(
        &self,
        id: &str,
        bundle: &Path,
        pid_file: &Path,
        console_socket: Option<&Path>,
        stdio: ChildStdio,
    ) -> Result<i32, OciCliError> {
        let mut cmd = self.command("create", true);
        cmd.arg("--bundle")
            .arg(bundle)
            .arg("--pid-file")
            .arg(pid_file);
        if let Some(s) = console_socket {
            cmd.arg("--console-socket").arg(s);
        }
        cmd.arg(id);
        let _ = std::fs::remove_file(pid_file);
        self.run("create", cmd, Some(stdio), false)?;
        self.read_pid("create", pid_file)
    }

    /// `exec --process FILE --detach --pid-file F [--console-socket S] ID`; returns the pid.
    pub fn exec(
        &self,
        id: &str,
        process_file: &Path,
        pid_file: &Path,
        console_socket: Option<&Path>,
        stdio: ChildStdio,
    ) -> Result<i32, OciCliError> {
        let mut cmd = self.command("exec", true);
        cmd.arg("--process")
            .arg(process_file)
            .arg("--detach")
            .arg("--pid-file")
            .arg(pid_file);
        if let Some(s) = console_socket {
            cmd.arg("--console-socket").arg(s);
        }
        cmd.arg(id);
        let _ = std::fs::remove_file(pid_file);
        let ran = self.run("exec", cmd, Some(stdio), false);
        let pid = ran.and_then(|_| self.read_pid("exec", pid_file));
        let _ = std::fs::remove_file(pid_file);
        pid
    }

    fn read_pid(&self, command: &'static str, pid_file: &Path) -> Result<i32, OciCliError> {
        let text = std::fs::read_to_string(pid_file)
            .map_err(io_err(format!("reading {}", pid_file.display())))?;
        text.trim()
            .parse()
            .ok()
            .filter(|&p: &i32| p > 0)
            .ok_or_else(|| OciCliError::Output {
                runtime: self.name(),
                command,
                message: format!("bad pid file: {:?}", text.trim()),
            })
    }

    fn simple(&self, command: &'static str, args: &[&str], id: &str) -> Result<(), OciCliError> {
        let mut cmd = self.command(command, false);
        cmd.args(args).arg(id);
        self.run(command, cmd, None, false).map(drop)
    }

    pub fn start(&self, id: &str) -> Result<(), OciCliError> {
        self.simple("start", &[], id)
    }

    /// `kill [--all] ID SIGNAL` (the signal's number).
    pub fn kill(&self, id: &str, signal: i32, all: bool) -> Result<(), OciCliError> {
        let mut cmd = self.command("kill", false);
        if all {
            cmd.arg("--all");
        }
        cmd.arg(id).arg(signal.to_string());
        self.run("kill", cmd, None, false).map(drop)
    }

    pub fn pause(&self, id: &str) -> Result<(), OciCliError> {
        self.simple("pause", &[], id)
    }

    pub fn resume(&self, id: &str) -> Result<(), OciCliError> {
        self.simple("resume", &[], id)
    }

    /// `delete [--force] ID`; with `force`, a container the runtime does not know is fine.
    pub fn delete(&self, id: &str, force: bool) -> Result<(), OciCliError> {
        if force && self.state(id).is_err() {
            return Ok(());
        }
        let args: &[&str] = if force { &["--force"] } else { &[] };
        self.simple("delete", args, id)
    }

    /// `state ID`: the runtime's OCI state (`status`, `pid`, `bundle`...).
    pub fn state(&self, id: &str) -> Result<serde_json::Value, OciCliError> {
        let mut cmd = self.command("state", false);
        cmd.arg(id);
        let out = self.run("state", cmd, None, true)?;
        serde_json::from_slice(&out).map_err(|e| OciCliError::Output {
            runtime: self.name(),
            command: "state",
            message: e.to_string(),
        })
    }

    /// `update --resources FILE ID`, the file written beside the root and removed after.
    pub fn update(&self, id: &str, resources: &serde_json::Value) -> Result<(), OciCliError> {
        let file = self
            .root
            .with_file_name(format!("{}.update-{id}.json", self.name()));
        let text = serde_json::to_vec(resources).map_err(|e| OciCliError::Output {
            runtime: self.name(),
            command: "update",
            message: e.to_string(),
        })?;
        std::fs::write(&file, text).map_err(io_err(format!("writing {}", file.display())))?;
        let mut cmd = self.command("update", false);
        cmd.arg("--resources").arg(&file).arg(id);
        let result = self.run("update", cmd, None, false).map(drop);
        let _ = std::fs::remove_file(&file);
        result
    }

    /// The container's `cgroupsPath`, from the config of the bundle its state names.
    pub fn cgroups_path(&self, id: &str) -> Result<PathBuf, OciCliError> {
        let state = self.state(id)?;
        let bundle = state["bundle"].as_str().unwrap_or_default();
        let config = Path::new(bundle).join("config.json");
        let data =
            std::fs::read(&config).map_err(io_err(format!("reading {}", config.display())))?;
        let spec: serde_json::Value =
            serde_json::from_slice(&data).map_err(|e| OciCliError::Output {
                runtime: self.name(),
                command: "state",
                message: format!("{}: {e}", config.display()),
            })?;
        match spec["linux"]["cgroupsPath"].as_str() {
            Some(p) if !p.is_empty() => Ok(PathBuf::from(p)),
            _ => Err(OciCliError::Output {
                runtime: self.name(),
                command: "state",
                message: format!("{} names no cgroupsPath", config.display()),
            }),
        }
    }
}

/// The last `error` (or `fatal`) message of the JSON log written after `start`.
fn last_error_in_file(log: &Path, start: u64) -> Option<String> {
    let mut file = std::fs::File::open(log).ok()?;
    file.seek(SeekFrom::Start(start)).ok()?;
    let mut text = Vec::new();
    file.take(1 << 20).read_to_end(&mut text).ok()?;
    last_error(&text)
}

/// The last `error` (or `fatal`) message of JSON log lines.
fn last_error(text: &[u8]) -> Option<String> {
    String::from_utf8_lossy(text)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| matches!(v["level"].as_str(), Some("error" | "fatal")))
        .filter_map(|v| v["msg"].as_str().map(str::to_string))
        .next_back()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_error_reads_what_came_after_the_start() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("log.json");
        let old = "{\"level\":\"error\",\"msg\":\"old\"}\n";
        std::fs::write(
            &log,
            format!(
                "{old}{{\"level\":\"warning\",\"msg\":\"w\"}}\nnot json\n{{\"level\":\"error\",\"msg\":\"new\"}}\n"
            ),
        )
        .unwrap();
        assert_eq!(last_error_in_file(&log, 0).as_deref(), Some("new"));
        let from = old.len() as u64;
        assert_eq!(last_error_in_file(&log, from).as_deref(), Some("new"));
        let end = std::fs::metadata(&log).unwrap().len();
        assert_eq!(last_error_in_file(&log, end), None);
    }

    #[test]
    fn a_failing_runtime_gives_its_stderr() {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("rt");
        std::fs::write(
            &script,
            "#!/bin/sh\necho \"no such thing: $*\" >&2\nexit 1\n",
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        let rt = OciCli::new(
            &script,
            &["--flag".into()],
            &dir.path().join("root"),
            Some(&dir.path().join("log.json")),
        );
        let e = rt.start("c1").unwrap_err().to_string();
        let want = "OCI runtime start failed: no such thing: --flag --root";
        assert!(e.starts_with(want), "{e}");
        assert!(e.ends_with("--log-format json start c1"), "{e}");
        std::fs::write(
            &script,
            "#!/bin/sh\necho '{\"level\":\"error\",\"msg\":\"container does not exist\"}' >&2\nexit 1\n",
        )
        .unwrap();
        let e = rt.kill("c1", 9, false).unwrap_err().to_string();
        assert_eq!(e, "OCI runtime kill failed: container does not exist");
    }
}
