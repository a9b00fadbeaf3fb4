//! The control protocol between the daemon and a monitor, over `STATE_DIR/monitor.sock`.
//!
//! Each connection carries one request: a JSON object on one line ([`Request`]). The answer is one
//! JSON line too ([`Reply`], [`ExitStatus`], [`State`] or [`ExecState`]). After the `{"ok":true}`
//! of `attach` or `exec`, the connection becomes a stream: from the monitor, the output (Docker's
//! stdcopy frames without a tty, raw bytes with one); from the client, raw stdin bytes, its
//! half-close meaning end of stdin. Defined once here, so that daemon and monitor share the types.

use std::io::{self, BufRead, Write};

use serde::{Deserialize, Serialize};

/// The version of this protocol; a request with another version is refused.
pub const VERSION: u32 = 1;

fn current_version() -> u32 {
    VERSION
}

/// Errors of the protocol's encoding.
#[derive(Debug, thiserror::Error)]
pub enum ProtocolError {
    #[error("{what}: {source}")]
    Io {
        what: &'static str,
        source: io::Error,
    },
    #[error("invalid message {text:?}: {source}")]
    Json {
        text: String,
        source: serde_json::Error,
    },
    #[error("the monitor closed the connection without an answer")]
    Closed,
    #[error("monitor: {0}")]
    Refused(String),
}

/// One request: `{"version":1,"op":"..."...}`. `version` may be left out (it is then [`VERSION`]).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Request {
    #[serde(default = "current_version")]
    pub version: u32,
    #[serde(flatten)]
    pub op: Op,
}

impl From<Op> for Request {
    fn from(op: Op) -> Self {
        Request {
            version: VERSION,
            op,
        }
    }
}

/// What a request asks for.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Op {
    /// Start the created container. Answer: [`Reply`].
    Start,
    /// Attach to the container's stdio. Answer: [`Reply`], then the stream.
    Attach {
        #[serde(default)]
        stdin: bool,
        #[serde(default)]
        stdout: bool,
        #[serde(default)]
        stderr: bool,
        /// Replay of the log is the daemon's business: the monitor accepts only `false`.
        #[serde(default)]
        logs: bool,
    },
    /// Set the terminal size of the container (no `exec_id`) or of an exec. Answer: [`Reply`].
    Resize {
        height: u16,
        width: u16,
        #[serde(default)]
        exec_id: Option<String>,
    },
    /// Answered once the container has exited, with [`ExitStatus`].
    Wait,
    /// Answer: [`State`].
    State,
    /// Start a process in the running container. Answer: [`Reply`] with its `pid`, then the
    /// connection is the exec's attach stream, closed once it exited and its output was sent.
    Exec {
        exec_id: String,
        /// The OCI runtime `process`, complete; its `terminal` is replaced by `tty`.
        process: Box<oci_spec::runtime::Process>,
        #[serde(default)]
        tty: bool,
        #[serde(default)]
        stdin: bool,
    },
    /// Answer: [`ExecState`].
    ExecState { exec_id: String },
    /// After the container exited: the monitor answers [`Reply`] and exits.
    Shutdown,
    /// Close the log file and open its path again (the CRI's `ReopenContainerLog`, after
    /// kubelet renamed the file). Answer: [`Reply`]; an error when the container has exited.
    ReopenLog,
    /// Answered with [`Health`] once its `version` is past `seen` (at once if it is already),
    /// or with an error when the container runs no health check or has exited.
    Health {
        #[serde(default)]
        seen: u64,
    },
}

/// A container's health check as the monitor runs it: the JSON of `--healthcheck FILE`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HealthCheck {
    /// The process of each probe: the container's exec process, the check's command as `args`.
    pub process: Box<oci_spec::runtime::Process>,
    /// Between the end of a probe and the start of the next.
    pub interval_ms: u64,
    /// A probe running longer is killed and fails.
    pub timeout_ms: u64,
    /// Failures within this time of the start do not count while the container is `starting`.
    pub start_period_ms: u64,
    /// The interval within the start period, while `starting`.
    pub start_interval_ms: u64,
    /// Consecutive failures that make the container `unhealthy`.
    pub retries: u32,
}

/// Docker's health statuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HealthStatus {
    Starting,
    Healthy,
    Unhealthy,
}

impl HealthStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            HealthStatus::Starting => "starting",
            HealthStatus::Healthy => "healthy",
            HealthStatus::Unhealthy => "unhealthy",
        }
    }
}

/// One probe's result (`State.Health.Log[]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthResult {
    /// RFC 3339 with nanoseconds, UTC.
    pub start: String,
    pub end: String,
    /// 0: healthy; anything else a failure (-1: the probe could not run or timed out).
    pub exit_code: i32,
    /// Its stdout and stderr, at most 4096 bytes.
    pub output: String,
}

/// The answer to `health`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    /// Grows by one with each change.
    pub version: u64,
    pub status: HealthStatus,
    pub failing_streak: u32,
    /// The last 5 results, oldest first.
    pub log: Vec<HealthResult>,
}

/// `{"ok":true}`, `{"ok":true,"pid":N}` or `{"error":"..."}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reply {
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Reply {
    pub fn ok() -> Self {
        Reply {
            ok: true,
            ..Reply::default()
        }
    }

    pub fn error(message: impl Into<String>) -> Self {
        Reply {
            error: Some(message.into()),
            ..Reply::default()
        }
    }

    /// The reply as a result: the error text becomes [`ProtocolError::Refused`].
    pub fn into_result(self) -> Result<Reply, ProtocolError> {
        match self.error {
            Some(e) => Err(ProtocolError::Refused(e)),
            None => Ok(self),
        }
    }
}

/// How the container ended: the answer to `wait`, and the content of `exit.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitStatus {
    /// The exit status, or 128 + the signal that killed the init.
    pub exit_code: i32,
    pub oom_killed: bool,
    /// RFC 3339 with nanoseconds, UTC.
    pub finished_at: String,
}

/// `created`, `running` or `exited`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Created,
    Running,
    Exited,
}

/// The answer to `state`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    pub status: Status,
    pub pid: i32,
    pub exit_code: Option<i32>,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
}

/// The answer to `exec_state`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecState {
    pub running: bool,
    pub pid: i32,
    pub exit_code: Option<i32>,
}

/// The one line a monitor writes to its ready descriptor once the container is created (or
/// could not be): `ready PID` or `error MESSAGE` (on one line).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ready {
    Created { pid: i32 },
    Failed(String),
}

impl Ready {
    /// The line, newline included.
    pub fn to_line(&self) -> String {
        match self {
            Ready::Created { pid } => format!("ready {pid}\n"),
            Ready::Failed(message) => format!("error {}\n", message.replace('\n', " ")),
        }
    }

    /// Parses what the monitor wrote: anything but `ready PID` is a failure, its text the
    /// message (an empty one says the monitor exited without a word).
    pub fn parse(line: &str) -> Ready {
        let line = line.trim_end();
        if let Some(pid) = line
            .strip_prefix("ready ")
            .and_then(|p| p.trim().parse().ok())
        {
            return Ready::Created { pid };
        }
        let message = line.strip_prefix("error ").unwrap_or(line).trim();
        Ready::Failed(if message.is_empty() {
            "the container monitor exited without a word".to_string()
        } else {
            message.to_string()
        })
    }
}

/// `value` as one line of JSON, newline included.
pub fn to_line<T: Serialize>(value: &T) -> Vec<u8> {
    // Serializing these types cannot fail: no maps with non-string keys, no failing Serialize.
    let mut line = serde_json::to_vec(value).unwrap_or_else(|_| b"{}".to_vec());
    line.push(b'\n');
    line
}

/// Parses one line (with or without its newline).
pub fn from_line<T: serde::de::DeserializeOwned>(line: &[u8]) -> Result<T, ProtocolError> {
    serde_json::from_slice(line).map_err(|source| ProtocolError::Json {
        text: String::from_utf8_lossy(line).trim_end().to_string(),
        source,
    })
}

/// Blocking client side: sends `request` on `stream` and reads the one-line answer. Reads the
/// socket byte by byte up to the newline, so that what follows (an attach stream) stays unread.
pub fn call<T: serde::de::DeserializeOwned>(
    stream: &mut std::os::unix::net::UnixStream,
    request: &Request,
) -> Result<T, ProtocolError> {
    stream
        .write_all(&to_line(request))
        .map_err(|source| ProtocolError::Io {
            what: "sending a request to the monitor",
            source,
        })?;
    let line = read_line(stream)?;
    // An error reply is the same shape for every request.
    if let Ok(Reply {
        error: Some(e),
        ok: false,
        ..
    }) = from_line::<Reply>(&line)
    {
        return Err(ProtocolError::Refused(e));
    }
    from_line(&line)
}

/// Reads one line, one byte at a time (see [`call`]).
pub fn read_line(r: &mut impl io::Read) -> Result<Vec<u8>, ProtocolError> {
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    loop {
        match r.read(&mut byte) {
            Ok(0) => return Err(ProtocolError::Closed),
            Ok(_) if byte[0] == b'\n' => return Ok(line),
            Ok(_) => line.push(byte[0]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(source) => {
                return Err(ProtocolError::Io {
                    what: "reading the monitor's answer",
                    source,
                })
            }
        }
    }
}

/// Reads one line from a buffered reader (for callers that own the whole connection).
pub fn read_line_buffered(r: &mut impl BufRead) -> Result<Vec<u8>, ProtocolError> {
    let mut line = Vec::new();
    let n = r
        .read_until(b'\n', &mut line)
        .map_err(|source| ProtocolError::Io {
            what: "reading the monitor's answer",
            source,
        })?;
    if n == 0 {
        return Err(ProtocolError::Closed);
    }
    if line.last() == Some(&b'\n') {
        line.pop();
    }
    Ok(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_format() {
        let req: Request = from_line(br#"{"op":"attach","stdin":true,"stdout":true}"#).unwrap();
        assert_eq!(req.version, VERSION);
        assert!(matches!(
            req.op,
            Op::Attach {
                stdin: true,
                stdout: true,
                stderr: false,
                logs: false
            }
        ));
        let line = to_line(&Request::from(Op::Start));
        assert_eq!(line, b"{\"version\":1,\"op\":\"start\"}\n");
        let line = to_line(&Request::from(Op::Resize {
            height: 10,
            width: 20,
            exec_id: None,
        }));
        assert_eq!(
            line,
            b"{\"version\":1,\"op\":\"resize\",\"height\":10,\"width\":20,\"exec_id\":null}\n"
        );
        assert_eq!(to_line(&Reply::ok()), b"{\"ok\":true}\n");
        assert_eq!(to_line(&Reply::error("x")), b"{\"error\":\"x\"}\n");
        let req: Request = from_line(
            br#"{"version":1,"op":"exec","exec_id":"e1","process":{"args":["true"],"cwd":"/","user":{"uid":0,"gid":0}},"tty":false,"stdin":false}"#,
        )
        .unwrap();
        assert!(matches!(req.op, Op::Exec { .. }));
    }

    #[test]
    fn ready_lines() {
        for r in [
            Ready::Created { pid: 42 },
            Ready::Failed("no such file".into()),
        ] {
            assert_eq!(Ready::parse(&r.to_line()), r);
        }
        assert_eq!(
            Ready::Failed("a\nb".into()).to_line(),
            "error a b\n",
            "one line"
        );
        assert_eq!(
            Ready::parse(""),
            Ready::Failed("the container monitor exited without a word".into())
        );
        assert_eq!(Ready::parse("ready x"), Ready::Failed("ready x".into()));
    }
}
