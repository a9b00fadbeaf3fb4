//! The monitor's life: startup (subreaper, pid file, socket, stdio, create, the ready line), then
//! one poll(2) loop over the signalfd, the socket, the clients and the tasks' descriptors, until
//! `shutdown`, or 5 seconds without a connection after the container's end was recorded.

use std::collections::HashMap;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, IntoRawFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use berth_api::stdcopy::{self, Stream};
use berth_cgroups::Manager;
use berth_runtime::CreateOptions;
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use rustix::event::{poll, PollFd, PollFlags};

use crate::config::Config;
use crate::driver::{Driver, DriverError};
use crate::logfile::{LogFile, LogStream};
use crate::protocol::{self, ExitStatus};
use crate::stdio::{self, StdioError};
use crate::task::{self, Ended, Task};
use berth_memtrim::Trimmer;

/// How long output is still read after a process ended, if its pipes stay open (a process that
/// escaped with a copy of them).
const DRAIN: Duration = Duration::from_secs(1);
/// How long a monitor whose container ended waits for a connection before it exits.
const IDLE_EXIT: Duration = Duration::from_secs(5);
/// A client that falls this far behind the output is disconnected.
const CLIENT_BACKLOG: usize = 8 << 20;
/// Stdin buffered for the process beyond this stops reading from clients.
pub(crate) const STDIN_BACKLOG: usize = 256 << 10;
/// A request line longer than this is refused.
const MAX_REQUEST: usize = 1 << 20;
/// The key of the container's init in [`Monitor::tasks`].
pub(crate) const CONTAINER: u64 = 0;

#[derive(Debug, thiserror::Error)]
pub enum MonitorError {
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Stdio(#[from] StdioError),
    #[error(transparent)]
    Log(#[from] crate::logfile::LogError),
    /// The runtime's own message, passed through verbatim.
    #[error(transparent)]
    Runtime(#[from] berth_runtime::Error),
    /// A foreign runtime's message, passed through verbatim too.
    #[error(transparent)]
    Driver(#[from] DriverError),
    #[error("--tty needs \"terminal\": true in the bundle's process")]
    NoTerminal,
    #[error("the health check: {0}")]
    HealthCheck(#[from] protocol::ProtocolError),
}

fn io_err(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> MonitorError {
    let what = what.into();
    move |source| MonitorError::Io { what, source }
}

/// What a connection is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    /// Its request line has not arrived yet.
    Request,
    /// Answered; waits to be flushed and closed.
    Done,
    /// Waits for the container's end.
    Wait,
    /// Waits for a change of the health check's state past version `seen`.
    Health { seen: u64 },
    /// Streams the output of task `task` and feeds its stdin.
    Attach {
        task: u64,
        stdin: bool,
        stdout: bool,
        stderr: bool,
    },
}

#[derive(Debug)]
pub(crate) struct Client {
    pub sock: UnixStream,
    pub inbuf: Vec<u8>,
    pub out: Vec<u8>,
    pub role: Role,
    /// The client half-closed (or closed) its side.
    pub read_eof: bool,
    pub close_when_flushed: bool,
    pub dead: bool,
}

pub struct Monitor {
    pub(crate) cfg: Config,
    pub(crate) runtime: Driver,
    signals: SignalFd,
    listener: UnixListener,
    pub(crate) log: LogFile,
    pub(crate) tasks: HashMap<u64, Task>,
    pub(crate) next_task: u64,
    pub(crate) clients: HashMap<u64, Client>,
    next_client: u64,
    /// The container's cgroup, for its OOM count at the end.
    cgroup: Option<Manager>,
    pub(crate) started_at: Option<SystemTime>,
    /// Set once the container's end is handled (exit.json written, container deleted).
    pub(crate) exit: Option<ExitStatus>,
    idle_since: Option<Instant>,
    pub(crate) shutdown: bool,
    buf: Vec<u8>,
    pub(crate) trimmer: Trimmer,
    /// The health check, if the container has one.
    pub(crate) prober: Option<crate::health::Prober>,
}

#[derive(Debug, Clone, Copy)]
enum Token {
    Signals,
    Listener,
    Client(u64),
    Output(u64, usize),
    Stdin(u64),
}

/// Runs the monitor; returns the process's exit code.
pub fn run(cfg: Config) -> i32 {
    let ready = cfg.ready_fd.map(|fd| {
        // SAFETY: the daemon passed this descriptor to us alone, for the ready line; nothing
        // else in this process uses it.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let _ = rustix::io::fcntl_setfd(&fd, rustix::io::FdFlags::CLOEXEC);
        fd
    });
    let report = |ready: Option<OwnedFd>, line: String| {
        let Some(mut fd) = ready else {
            eprint!("{line}");
            return;
        };
        let mut rest = line.as_bytes();
        while !rest.is_empty() {
            match rustix::io::write(&fd, rest) {
                Ok(n) => rest = &rest[n..],
                Err(rustix::io::Errno::INTR) => {}
                Err(_) => break,
            }
        }
        // The daemon passes the pipe as stdout: a standard descriptor gets /dev/null back
        // instead of staying free for the next open.
        if fd.as_raw_fd() <= 2 {
            if let Ok(null) = std::fs::File::open("/dev/null") {
                if rustix::io::dup2(&null, &mut fd).is_ok() {
                    let _ = fd.into_raw_fd();
                }
            }
        }
    };
    let socket = cfg.socket_path();
    match Monitor::setup(&cfg) {
        Ok(mut monitor) => {
            let pid = monitor.tasks.get(&CONTAINER).map_or(0, |t| t.pid);
            report(ready, protocol::Ready::Created { pid }.to_line());
            monitor.serve();
            0
        }
        Err(e) => {
            let _ = std::fs::remove_file(socket);
            report(ready, protocol::Ready::Failed(e.to_string()).to_line());
            1
        }
    }
}

/// Blocks the signals the monitor takes through its signalfd: SIGCHLD, and SIGTERM, SIGINT and
/// SIGHUP, which it reads and ignores. They are blocked rather than ignored because an ignored
/// signal stays ignored across execve, in the container's init; the runtime's child unblocks.
fn signals() -> Result<SignalFd, MonitorError> {
    let mut set = SigSet::empty();
    for s in [
        Signal::SIGCHLD,
        Signal::SIGTERM,
        Signal::SIGINT,
        Signal::SIGHUP,
    ] {
        set.add(s);
    }
    set.thread_block()
        .map_err(|e| io_err("blocking signals")(e.into()))?;
    // SAFETY: SIG_IGN installs no handler; the runtime's children set SIGPIPE back to default.
    unsafe { nix::sys::signal::signal(Signal::SIGPIPE, nix::sys::signal::SigHandler::SigIgn) }
        .map_err(|e| io_err("ignoring SIGPIPE")(e.into()))?;
    SignalFd::with_flags(&set, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
        .map_err(|e| io_err("creating a signalfd")(e.into()))
}

fn write_atomic(path: &Path, text: &str) -> Result<(), MonitorError> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text)
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(io_err(format!("writing {}", path.display())))
}

/// The log file of a foreign runtime's `create` and `exec` (their stdio is the container's), in
/// the state directory.
pub const RUNTIME_LOG: &str = "runtime-log.json";

/// Where the pty master of a container created with a terminal comes from: the runtime library's
/// socket pair, or the console socket a foreign runtime connects to (and its path).
enum Console {
    Stream(Option<UnixStream>),
    Listener(Option<(UnixListener, std::path::PathBuf)>),
}

/// Creates the container with `child` as its stdio (without a terminal); returns its pid.
fn create(
    runtime: &Driver,
    cfg: &Config,
    child: stdio::ChildStdio,
) -> Result<(i32, Console), MonitorError> {
    match runtime {
        Driver::Berth(rt) => {
            let opts = CreateOptions {
                bundle: cfg.bundle.clone(),
                foreground: cfg.tty,
                ..CreateOptions::default()
            };
            let launched = stdio::with_stdio(&child, || rt.create(&cfg.id, &opts))??;
            drop(child);
            Ok((launched.pid.as_raw(), Console::Stream(launched.console)))
        }
        Driver::Oci(rt) => {
            let listener = match cfg.tty {
                true => {
                    let path = cfg.dir.join("console.sock");
                    Some((stdio::console_listener(&path)?, path))
                }
                false => None,
            };
            let pid_file = cfg.dir.join("runtime.pid");
            let socket = listener.as_ref().map(|(_, p)| p.as_path());
            let created = rt.create(&cfg.id, &cfg.bundle, &pid_file, socket, child);
            let _ = std::fs::remove_file(&pid_file);
            match created {
                Ok(pid) => Ok((pid, Console::Listener(listener))),
                Err(e) => {
                    if let Some((_, path)) = &listener {
                        let _ = std::fs::remove_file(path);
                    }
                    Err(DriverError::from(e).into())
                }
            }
        }
    }
}

impl Monitor {
    fn setup(cfg: &Config) -> Result<Monitor, MonitorError> {
        let signals = signals()?;
        nix::sys::prctl::set_child_subreaper(true)
            .map_err(|e| io_err("becoming a subreaper")(e.into()))?;
        std::fs::create_dir_all(&cfg.dir).map_err(io_err(format!(
            "creating state directory {}",
            cfg.dir.display()
        )))?;
        write_atomic(
            &cfg.dir.join("monitor.pid"),
            &std::process::id().to_string(),
        )?;
        let sock = cfg.socket_path();
        let _ = std::fs::remove_file(&sock);
        let old = rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o177));
        let listener = UnixListener::bind(&sock);
        rustix::process::umask(old);
        let listener = listener.map_err(io_err(format!("binding {}", sock.display())))?;
        listener
            .set_nonblocking(true)
            .map_err(io_err("setting the socket non-blocking"))?;
        let prober = match &cfg.healthcheck {
            Some(path) => {
                let text =
                    std::fs::read(path).map_err(io_err(format!("reading {}", path.display())))?;
                let check = protocol::from_line(&text)?;
                Some(crate::health::Prober::new(check))
            }
            None => None,
        };
        let log = LogFile::open(&cfg.log, cfg.log_max_size, cfg.log_max_file, cfg.log_format);
        let runtime = Driver::new(
            &cfg.runtime_root,
            cfg.foreign().as_ref(),
            Some(&cfg.dir.join(RUNTIME_LOG)),
        );
        let (child, ours) = if cfg.tty {
            (stdio::null()?, None)
        } else {
            let (child, ours) = stdio::pipes(cfg.stdin)?;
            (child, Some(ours))
        };
        let (pid, console) = create(&runtime, cfg, child)?;
        // From here on, a failure deletes the container again.
        let rest = || -> Result<(Task, Option<Manager>), MonitorError> {
            let task = match ours {
                Some(ours) => Task::with_pipes(pid, ours, cfg.stdin_once),
                None => {
                    let master = match &console {
                        Console::Stream(Some(s)) => stdio::receive_master(s)?,
                        Console::Listener(Some((l, _))) => stdio::accept_master(l)?,
                        _ => return Err(MonitorError::NoTerminal),
                    };
                    Task::with_tty(pid, master, cfg.stdin, cfg.stdin_once)
                }
            };
            let cgroup = runtime.cgroup(&cfg.id)?;
            write_atomic(&cfg.dir.join("init.pid"), &pid.to_string())?;
            Ok((task, Some(cgroup)))
        };
        let result = rest();
        if let Console::Listener(Some((_, path))) = &console {
            let _ = std::fs::remove_file(path);
        }
        let (task, cgroup) = match result {
            Ok(r) => r,
            Err(e) => {
                let _ = runtime.delete(&cfg.id, true);
                let _ = waitpid(nix::unistd::Pid::from_raw(pid), None);
                return Err(e);
            }
        };
        // The create's transient allocations (the spec, the seccomp program, the clone stack)
        // are freed; give the pages back, since this process stays as long as the container.
        let mut trimmer = Trimmer::default();
        trimmer.trim();
        Ok(Monitor {
            cfg: cfg.clone(),
            runtime,
            signals,
            listener,
            log,
            tasks: HashMap::from([(CONTAINER, task)]),
            next_task: 1,
            clients: HashMap::new(),
            next_client: 0,
            cgroup,
            started_at: None,
            exit: None,
            idle_since: None,
            shutdown: false,
            buf: vec![0; 64 << 10],
            trimmer,
            prober,
        })
    }

    /// The loop, until shutdown or idle exit.
    pub fn serve(&mut self) {
        loop {
            if self.shutdown {
                break;
            }
            if self.idle_since.is_some_and(|t| t.elapsed() >= IDLE_EXIT) {
                break;
            }
            self.trimmer.trim_if_idle();
            let events = self.poll_once();
            if !events.is_empty() {
                self.trimmer.touch();
            }
            for (token, flags) in events {
                self.dispatch(token, flags);
            }
            self.housekeeping();
        }
        // A rotated log being compressed is finished before the monitor goes.
        self.log.close();
        let _ = std::fs::remove_file(self.cfg.socket_path());
    }

    fn timeout(&self) -> Option<Duration> {
        if self.log.busy() {
            // A compression step after each look at the descriptors.
            return Some(Duration::ZERO);
        }
        let mut t: Option<Duration> = None;
        let mut min = |d: Duration| t = Some(t.map_or(d, |t| t.min(d)));
        if let Some(since) = self.idle_since {
            min(IDLE_EXIT.saturating_sub(since.elapsed()));
        }
        for task in self.tasks.values() {
            if let (Some(ended), false) = (task.ended, task.finished) {
                min(DRAIN.saturating_sub(ended.reaped.elapsed()));
            }
        }
        if let Some(d) = self.trimmer.due_in() {
            min(d);
        }
        if let Some(d) = self.log.retry_in() {
            min(d);
        }
        if let Some(d) = self.prober.as_ref().and_then(|p| p.due_in()) {
            min(d);
        }
        t.map(|d| d + Duration::from_millis(5))
    }

    fn poll_once(&mut self) -> Vec<(Token, PollFlags)> {
        let timeout = self.timeout().map(|d| rustix::event::Timespec {
            tv_sec: d.as_secs() as i64,
            tv_nsec: i64::from(d.subsec_nanos()),
        });
        let mut tokens = vec![Token::Signals, Token::Listener];
        let mut fds = vec![
            PollFd::new(&self.signals, PollFlags::IN),
            PollFd::new(&self.listener, PollFlags::IN),
        ];
        for (&k, c) in &self.clients {
            let mut flags = PollFlags::empty();
            let stdin_full = match c.role {
                Role::Attach {
                    task, stdin: true, ..
                } => self
                    .tasks
                    .get(&task)
                    .is_some_and(|t| t.stdin_buf.len() >= STDIN_BACKLOG),
                _ => false,
            };
            if !c.read_eof && !stdin_full {
                flags |= PollFlags::IN;
            }
            if !c.out.is_empty() {
                flags |= PollFlags::OUT;
            }
            tokens.push(Token::Client(k));
            fds.push(PollFd::new(&c.sock, flags));
        }
        for (&k, t) in &self.tasks {
            for (i, o) in t.outputs.iter().enumerate() {
                if let Some(fd) = &o.fd {
                    tokens.push(Token::Output(k, i));
                    fds.push(PollFd::new(fd, PollFlags::IN));
                }
            }
            if !t.stdin_buf.is_empty() {
                if let Some(fd) = t.stdin_fd() {
                    tokens.push(Token::Stdin(k));
                    fds.push(PollFd::new(fd, PollFlags::OUT));
                }
            }
        }
        match poll(&mut fds, timeout.as_ref()) {
            Ok(_) => {}
            Err(rustix::io::Errno::INTR) => return Vec::new(),
            Err(e) => {
                eprintln!("berth-monitor: poll: {e}");
                std::thread::sleep(Duration::from_millis(10));
                return Vec::new();
            }
        }
        fds.iter()
            .zip(tokens)
            .filter(|(fd, _)| !fd.revents().is_empty())
            .map(|(fd, token)| (token, fd.revents()))
            .collect()
    }

    fn dispatch(&mut self, token: Token, flags: PollFlags) {
        match token {
            Token::Signals => self.read_signals(),
            Token::Listener => self.accept(),
            Token::Client(k) => {
                let hup = flags.intersects(PollFlags::HUP | PollFlags::ERR);
                if flags.intersects(PollFlags::IN) || hup {
                    self.client_read(k, hup);
                }
                if flags.contains(PollFlags::OUT) {
                    self.client_flush(k);
                }
            }
            Token::Output(k, i) => self.read_output(k, i),
            Token::Stdin(k) => {
                if let Some(t) = self.tasks.get_mut(&k) {
                    t.flush_stdin();
                }
            }
        }
    }

    fn read_signals(&mut self) {
        let mut child = false;
        while let Ok(Some(info)) = self.signals.read_signal() {
            child |= info.ssi_signo == Signal::SIGCHLD as u32;
        }
        if child {
            self.reap();
        }
    }

    /// Reaps every child that ended: the init, execs, and orphans of the container.
    fn reap(&mut self) {
        loop {
            let status = match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) | Err(_) => return,
                Ok(status) => status,
            };
            let Some((pid, code)) = task::exit_code(status) else {
                continue;
            };
            let ended = Ended {
                code,
                at: SystemTime::now(),
                reaped: Instant::now(),
            };
            for t in self.tasks.values_mut() {
                if t.pid == pid && t.ended.is_none() {
                    t.ended = Some(ended);
                }
            }
        }
    }

    fn accept(&mut self) {
        loop {
            match self.listener.accept() {
                Ok((sock, _)) => {
                    if sock.set_nonblocking(true).is_err() {
                        continue;
                    }
                    let k = self.next_client;
                    self.next_client += 1;
                    self.clients.insert(
                        k,
                        Client {
                            sock,
                            inbuf: Vec::new(),
                            out: Vec::new(),
                            role: Role::Request,
                            read_eof: false,
                            close_when_flushed: false,
                            dead: false,
                        },
                    );
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => return,
            }
        }
    }

    /// Reads what a client sent: its request line, then stdin bytes.
    fn client_read(&mut self, k: u64, hup: bool) {
        loop {
            let Some(c) = self.clients.get_mut(&k) else {
                return;
            };
            if c.read_eof {
                break;
            }
            let n = match rustix::io::read(c.sock.as_fd(), &mut self.buf) {
                Ok(n) => n,
                Err(rustix::io::Errno::INTR) => continue,
                Err(rustix::io::Errno::AGAIN) => break,
                Err(_) => {
                    c.dead = true;
                    break;
                }
            };
            if n == 0 {
                c.read_eof = true;
                match c.role {
                    Role::Request => c.dead = true,
                    Role::Attach {
                        task, stdin: true, ..
                    } => {
                        if let Some(t) = self.tasks.get_mut(&task) {
                            t.client_stdin_ended();
                        }
                    }
                    _ => {}
                }
                break;
            }
            match c.role {
                Role::Request => {
                    c.inbuf.extend_from_slice(&self.buf[..n]);
                    if let Some(i) = c.inbuf.iter().position(|&b| b == b'\n') {
                        let rest = c.inbuf.split_off(i + 1);
                        let mut line = std::mem::take(&mut c.inbuf);
                        line.pop();
                        self.handle_request(k, &line, rest);
                    } else if c.inbuf.len() > MAX_REQUEST {
                        c.dead = true;
                        break;
                    }
                }
                Role::Attach {
                    task, stdin: true, ..
                } => {
                    let data = &self.buf[..n];
                    if let Some(t) = self.tasks.get_mut(&task) {
                        if t.accepts_stdin() {
                            t.stdin_buf.extend_from_slice(data);
                            t.flush_stdin();
                            if t.stdin_buf.len() >= STDIN_BACKLOG && !hup {
                                break;
                            }
                        }
                    }
                }
                _ => {}
            }
        }
        if hup {
            if let Some(c) = self.clients.get_mut(&k) {
                c.dead = true;
            }
        }
    }

    fn client_flush(&mut self, k: u64) {
        let Some(c) = self.clients.get_mut(&k) else {
            return;
        };
        while !c.out.is_empty() {
            match rustix::io::write(c.sock.as_fd(), &c.out) {
                Ok(n) => {
                    c.out.drain(..n);
                }
                Err(rustix::io::Errno::INTR) => {}
                Err(rustix::io::Errno::AGAIN) => return,
                Err(_) => {
                    c.out.clear();
                    c.dead = true;
                }
            }
        }
    }

    /// Reads output of task `k`: into the log (the container's) and to its attached clients.
    fn read_output(&mut self, k: u64, i: usize) {
        let Some(t) = self.tasks.get_mut(&k) else {
            return;
        };
        let Some(o) = t.outputs.get_mut(i) else {
            return;
        };
        let Some(fd) = &o.fd else {
            return;
        };
        let stream = o.stream;
        let log_stream = match stream {
            Stream::Stderr => LogStream::Stderr,
            _ => LogStream::Stdout,
        };
        let n = match rustix::io::read(fd.as_fd(), &mut self.buf) {
            Ok(n) if n > 0 => n,
            Err(rustix::io::Errno::INTR | rustix::io::Errno::AGAIN) => return,
            // End of file, or EIO from a pty master whose slave side is closed.
            _ => {
                o.fd = None;
                if k == CONTAINER {
                    if let Err(e) = self.log.finish(log_stream) {
                        eprintln!("berth-monitor: {e}");
                    }
                }
                return;
            }
        };
        let data = &self.buf[..n];
        if let Some(p) = self.prober.as_mut().filter(|p| p.is_probe(k)) {
            p.output(data);
        }
        if k == CONTAINER {
            if let Err(e) = self.log.write(log_stream, data) {
                eprintln!("berth-monitor: {e}");
            }
        }
        let tty = t.tty;
        for c in self.clients.values_mut() {
            let Role::Attach {
                task,
                stdout,
                stderr,
                ..
            } = c.role
            else {
                continue;
            };
            let wanted = match stream {
                Stream::Stderr => stderr,
                _ => stdout,
            };
            if task != k || !wanted || c.dead {
                continue;
            }
            if !tty {
                c.out.extend_from_slice(&stdcopy::header(stream, n));
            }
            c.out.extend_from_slice(data);
            if c.out.len() > CLIENT_BACKLOG {
                c.dead = true;
            }
        }
    }

    fn housekeeping(&mut self) {
        // The marker of log records lost on a full disk, once there is room again.
        self.log.retry(false);
        if self.log.busy() {
            self.log.work();
            self.trimmer.touch();
        }
        self.health_tick();
        let done: Vec<u64> = self
            .tasks
            .iter()
            .filter(|(_, t)| {
                !t.finished
                    && t.ended
                        .is_some_and(|e| t.outputs_done() || e.reaped.elapsed() >= DRAIN)
            })
            .map(|(&k, _)| k)
            .collect();
        for k in done {
            if k == CONTAINER {
                self.finish_container();
            } else if self.prober.as_ref().is_some_and(|p| p.is_probe(k)) {
                self.finish_probe(k);
            } else {
                self.finish_exec(k);
            }
        }
        for t in self.tasks.values_mut() {
            if !t.stdin_buf.is_empty() {
                t.flush_stdin();
            }
        }
        let keys: Vec<u64> = self.clients.keys().copied().collect();
        for k in keys {
            self.client_flush(k);
            let Some(c) = self.clients.get(&k) else {
                continue;
            };
            if !(c.dead || (c.close_when_flushed && c.out.is_empty())) {
                continue;
            }
            if let Some(c) = self.clients.remove(&k) {
                if let (
                    Role::Attach {
                        task, stdin: true, ..
                    },
                    false,
                ) = (c.role, c.read_eof)
                {
                    if let Some(t) = self.tasks.get_mut(&task) {
                        t.client_stdin_ended();
                    }
                }
            }
        }
        if self.exit.is_some() && self.clients.is_empty() {
            self.idle_since.get_or_insert_with(Instant::now);
        } else {
            self.idle_since = None;
        }
    }

    /// The init ended and its output is drained: log, exit.json, delete, answers.
    fn finish_container(&mut self) {
        let Some(t) = self.tasks.get_mut(&CONTAINER) else {
            return;
        };
        t.finished = true;
        t.close_all();
        let Some(ended) = t.ended else {
            return;
        };
        for s in [LogStream::Stdout, LogStream::Stderr] {
            if let Err(e) = self.log.finish(s) {
                eprintln!("berth-monitor: {e}");
            }
        }
        self.log.retry(true);
        let oom_killed = self.cgroup.as_ref().is_some_and(crate::exit::oom_killed);
        let status = ExitStatus {
            exit_code: ended.code,
            oom_killed,
            finished_at: humantime::format_rfc3339_nanos(ended.at).to_string(),
        };
        if let Err(e) = crate::exit::write(&self.cfg.exit_path(), &status) {
            eprintln!("berth-monitor: {e}");
        }
        let line = protocol::to_line(&status);
        let mut waiters = Vec::new();
        for (&k, c) in &mut self.clients {
            match c.role {
                Role::Wait => {
                    c.out.extend_from_slice(&line);
                    c.close_when_flushed = true;
                    waiters.push(k);
                }
                Role::Attach {
                    task: CONTAINER, ..
                } => c.close_when_flushed = true,
                _ => {}
            }
        }
        // The waiters (the daemon) hear of the end first: the runtime's cleanup (cgroups, state)
        // is not theirs to wait for, and requests that come meanwhile are answered after it.
        for k in waiters {
            self.client_flush(k);
        }
        if let Err(e) = self.runtime.delete(&self.cfg.id, true) {
            eprintln!("berth-monitor: deleting container {}: {e}", self.cfg.id);
        }
        self.exit = Some(status);
        self.answer_health_waiters();
    }

    fn finish_exec(&mut self, k: u64) {
        if let Some(t) = self.tasks.get_mut(&k) {
            t.finished = true;
            t.close_all();
        }
        for c in self.clients.values_mut() {
            if matches!(c.role, Role::Attach { task, .. } if task == k) {
                c.close_when_flushed = true;
            }
        }
    }
}
