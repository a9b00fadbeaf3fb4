//! The requests of the control protocol, as the monitor carries them out.

use std::io::Write;
use std::time::SystemTime;

use berth_runtime::exec::{exec, ExecOptions};
use serde::Serialize;

use crate::driver::Driver;

use crate::monitor::{Monitor, Role, CONTAINER};
use crate::protocol::{self, ExecState, Op, Reply, Request, State, Status, VERSION};
use crate::stdio;
use crate::task::Task;

fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_nanos(t).to_string()
}

impl Monitor {
    /// Queues `value` as the answer to client `k`; with `close`, the connection ends after it.
    fn reply(&mut self, k: u64, value: &impl Serialize, close: bool) {
        if let Some(c) = self.clients.get_mut(&k) {
            c.out.extend_from_slice(&protocol::to_line(value));
            if close {
                c.role = Role::Done;
                c.close_when_flushed = true;
            }
        }
    }

    fn set_role(&mut self, k: u64, role: Role) {
        if let Some(c) = self.clients.get_mut(&k) {
            c.role = role;
        }
    }

    /// Handles the request `line` of client `k`; `rest` is what followed it (stdin already).
    pub(crate) fn handle_request(&mut self, k: u64, line: &[u8], rest: Vec<u8>) {
        let request: Request = match protocol::from_line(line) {
            Ok(r) => r,
            Err(e) => return self.reply(k, &Reply::error(e.to_string()), true),
        };
        if request.version != VERSION {
            let text = format!(
                "protocol version {} is not supported (this monitor speaks {VERSION})",
                request.version
            );
            return self.reply(k, &Reply::error(text), true);
        }
        match request.op {
            Op::Start => {
                let reply = self.start();
                self.reply(k, &reply, true);
            }
            Op::Attach {
                stdin,
                stdout,
                stderr,
                logs: _,
            } => {
                self.reply(k, &Reply::ok(), self.exit.is_some());
                if self.exit.is_none() {
                    self.attach(k, CONTAINER, stdin, stdout, stderr, rest);
                }
            }
            Op::Resize {
                height,
                width,
                exec_id,
            } => {
                let reply = self.resize(height, width, exec_id.as_deref());
                self.reply(k, &reply, true);
            }
            Op::Wait => match &self.exit {
                Some(status) => {
                    let status = status.clone();
                    self.reply(k, &status, true);
                }
                None => self.set_role(k, Role::Wait),
            },
            Op::State => {
                let state = self.state();
                self.reply(k, &state, true);
            }
            Op::Exec {
                exec_id,
                process,
                tty,
                stdin,
            } => match self.exec(&exec_id, *process, tty, stdin) {
                Ok((task, pid)) => {
                    let reply = Reply {
                        pid: Some(pid),
                        ..Reply::ok()
                    };
                    self.reply(k, &reply, false);
                    self.attach(k, task, stdin, true, true, rest);
                }
                Err(e) => self.reply(k, &Reply::error(e), true),
            },
            Op::ExecState { exec_id } => match self.find_exec(&exec_id) {
                Some(t) => {
                    let state = ExecState {
                        running: t.ended.is_none(),
                        pid: t.pid,
                        exit_code: t.ended.map(|e| e.code),
                    };
                    self.reply(k, &state, true);
                }
                None => self.reply(k, &Reply::error(format!("no such exec: {exec_id}")), true),
            },
            Op::ReopenLog => {
                let reply = if self.exit.is_some() {
                    Reply::error("the container is not running")
                } else {
                    match self.log.reopen() {
                        Ok(()) => Reply::ok(),
                        Err(e) => Reply::error(e.to_string()),
                    }
                };
                self.reply(k, &reply, true);
            }
            Op::Health { seen } => {
                if let Some(reply) = self.health_request(k, seen) {
                    self.reply(k, &reply, true);
                }
            }
            Op::Shutdown => {
                if self.exit.is_none() {
                    return self.reply(k, &Reply::error("the container has not exited"), true);
                }
                if let Some(c) = self.clients.get_mut(&k) {
                    // The last words: written at once, the loop ends after this.
                    let _ = c.sock.set_nonblocking(false);
                    let _ = c.sock.write_all(&protocol::to_line(&Reply::ok()));
                }
                self.shutdown = true;
            }
        }
    }

    fn attach(
        &mut self,
        k: u64,
        task: u64,
        stdin: bool,
        stdout: bool,
        stderr: bool,
        rest: Vec<u8>,
    ) {
        self.set_role(
            k,
            Role::Attach {
                task,
                stdin,
                stdout,
                stderr,
            },
        );
        if stdin && !rest.is_empty() {
            if let Some(t) = self.tasks.get_mut(&task) {
                if t.accepts_stdin() {
                    t.stdin_buf.extend_from_slice(&rest);
                    t.flush_stdin();
                }
            }
        }
    }

    fn start(&mut self) -> Reply {
        let ended = self.tasks.get(&CONTAINER).is_none_or(|t| t.ended.is_some());
        if ended {
            return Reply::error("the container has exited");
        }
        if self.started_at.is_some() {
            return Reply::error("the container is already started");
        }
        match self.runtime.start(&self.cfg.id) {
            Ok(()) => {
                self.started_at = Some(SystemTime::now());
                Reply::ok()
            }
            Err(e) => Reply::error(e.to_string()),
        }
    }

    fn state(&self) -> State {
        let task = self.tasks.get(&CONTAINER);
        let ended = task.and_then(|t| t.ended);
        let status = match (ended, self.started_at) {
            (Some(_), _) => Status::Exited,
            (None, Some(_)) => Status::Running,
            (None, None) => Status::Created,
        };
        State {
            status,
            pid: task.map_or(0, |t| t.pid),
            exit_code: ended.map(|e| e.code),
            started_at: self.started_at.map(rfc3339),
            finished_at: ended.map(|e| rfc3339(e.at)),
        }
    }

    fn find_exec(&self, exec_id: &str) -> Option<&Task> {
        self.tasks
            .values()
            .find(|t| t.exec_id.as_deref() == Some(exec_id))
    }

    fn resize(&self, height: u16, width: u16, exec_id: Option<&str>) -> Reply {
        let task = match exec_id {
            Some(id) => self.find_exec(id),
            None => self.tasks.get(&CONTAINER),
        };
        let Some(task) = task else {
            return Reply::error(format!("no such exec: {}", exec_id.unwrap_or_default()));
        };
        match task.master() {
            Some(master) => match stdio::resize(master, height, width) {
                Ok(()) => Reply::ok(),
                Err(e) => Reply::error(e.to_string()),
            },
            None if task.tty => Reply::error("the terminal is closed"),
            None => Reply::error("the process has no terminal"),
        }
    }

    /// Starts an exec as a child of the monitor, with its own pipes or pty; returns its task key
    /// and pid.
    pub(crate) fn exec(
        &mut self,
        exec_id: &str,
        mut process: oci_spec::runtime::Process,
        tty: bool,
        stdin: bool,
    ) -> Result<(u64, i32), String> {
        let running = self.started_at.is_some()
            && self
                .tasks
                .get(&CONTAINER)
                .is_some_and(|t| t.ended.is_none());
        if !running {
            return Err("the container is not running".into());
        }
        if self.find_exec(exec_id).is_some() {
            return Err(format!("exec {exec_id} exists already"));
        }
        process.set_terminal(Some(tty));
        let key = self.next_task;
        self.next_task += 1;
        let mut task = if tty {
            let path = self.cfg.dir.join(format!("x{key}.sock"));
            let listener = stdio::console_listener(&path).map_err(|e| e.to_string())?;
            let null = stdio::null().map_err(|e| e.to_string())?;
            let result = self.launch_exec(key, process, null, Some(&path));
            let _ = std::fs::remove_file(&path);
            let pid = result?;
            match stdio::accept_master(&listener) {
                Ok(master) => Task::with_tty(pid, master, stdin, true),
                Err(e) => {
                    let pid = nix::unistd::Pid::from_raw(pid);
                    let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
                    return Err(e.to_string());
                }
            }
        } else {
            let (child, ours) = stdio::pipes(stdin).map_err(|e| e.to_string())?;
            let pid = self.launch_exec(key, process, child, None)?;
            Task::with_pipes(pid, ours, true)
        };
        task.exec_id = Some(exec_id.to_string());
        let pid = task.pid;
        self.tasks.insert(key, task);
        Ok((key, pid))
    }

    /// Starts `process` in the container with `child` as its stdio (a terminal's console socket
    /// given); returns its pid. The monitor keeps no copy of `child`.
    fn launch_exec(
        &self,
        key: u64,
        process: oci_spec::runtime::Process,
        child: stdio::ChildStdio,
        console_socket: Option<&std::path::Path>,
    ) -> Result<i32, String> {
        match &self.runtime {
            Driver::Berth(rt) => {
                let opts = ExecOptions {
                    process,
                    console_socket: console_socket.map(std::path::Path::to_path_buf),
                    pid_file: None,
                    preserve_fds: 0,
                    ..Default::default()
                };
                let result = stdio::with_stdio(&child, || exec(rt, &self.cfg.id, &opts))
                    .map_err(|e| e.to_string())?;
                drop(child);
                Ok(result.map_err(|e| e.to_string())?.as_raw())
            }
            Driver::Oci(rt) => {
                let file = self.cfg.dir.join(format!("x{key}.json"));
                let pid_file = self.cfg.dir.join(format!("x{key}.pid"));
                let json = serde_json::to_vec(&process).map_err(|e| e.to_string())?;
                std::fs::write(&file, json).map_err(|e| format!("{}: {e}", file.display()))?;
                let result = rt.exec(&self.cfg.id, &file, &pid_file, console_socket, child);
                let _ = std::fs::remove_file(&file);
                result.map_err(|e| e.to_string())
            }
        }
    }
}
