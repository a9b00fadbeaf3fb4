//! `docker exec`: an exec is created (its config kept in memory, as dockerd keeps it), then
//! started by the container's monitor, which runs it as its child and streams its stdio; its
//! state and exit code come from the monitor.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use berth_api::models::{ExecConfig, ExecInspectResponse, ProcessConfig};
use berth_monitor::protocol::Op;
use oci_spec::runtime::{Capabilities, LinuxCapabilities, Process, User};

use crate::attach::MonitorStream;
use crate::error::{EngineError, Result};
use crate::{ids, monitor, spec, users, Engine};

/// An exec as created.
#[derive(Debug, Clone)]
pub struct Exec {
    pub id: String,
    pub container: String,
    pub config: ExecConfig,
    pub started: bool,
    /// Set when its process could not start: 127 (not found) or 126, as dockerd records it.
    pub failed: Option<i64>,
}

/// An exec checked and ready to start ([`Engine::exec_prepare`]).
#[derive(Debug, Clone)]
pub struct PreparedExec {
    pub id: String,
    pub container: String,
    name: String,
    /// Whether it has a terminal (a raw stream) or not (stdcopy frames).
    pub tty: bool,
    request: Op,
}

/// The execs of the existing containers.
pub type Execs = Arc<Mutex<HashMap<String, Exec>>>;

impl Engine {
    pub(crate) fn execs_lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Exec>> {
        self.execs.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Drops the execs of a removed container, as dockerd does.
    pub(crate) fn forget_execs(&self, container: &str) {
        self.execs_lock().retain(|_, e| e.container != container);
    }

    /// `POST /containers/{id}/exec`.
    pub fn exec_create(&self, key: &str, config: ExecConfig) -> Result<String> {
        let c = self.containers.get(key)?;
        if !c.is_running() {
            return Err(EngineError::Conflict(format!(
                "Container {} is not running",
                c.id
            )));
        }
        if c.is_restarting() {
            return Err(EngineError::Conflict(format!(
                "Container {} is restarting, wait until the container is running",
                c.id
            )));
        }
        if c.state.status == crate::container::Status::Paused {
            return Err(EngineError::Conflict(format!(
                "Container {} is paused, unpause the container before exec",
                c.id
            )));
        }
        if config.cmd.as_ref().is_none_or(|c| c.is_empty()) {
            return Err(EngineError::InvalidParameter(
                "No exec command specified".into(),
            ));
        }
        let id = ids::new_id();
        self.execs_lock().insert(
            id.clone(),
            Exec {
                id: id.clone(),
                container: c.id.clone(),
                config,
                started: false,
                failed: None,
            },
        );
        self.events.publish(
            berth_api::models::EventMessageTypeEnum::CONTAINER,
            "exec_create",
            &c.id,
            [("name".to_string(), c.name.clone())].into(),
        );
        Ok(id)
    }

    fn exec_get(&self, id: &str) -> Result<Exec> {
        self.execs_lock()
            .get(id)
            .cloned()
            .ok_or_else(|| EngineError::NotFound(format!("No such exec instance: {id}")))
    }

    /// `POST /exec/{id}/start`, first half: checks that the exec can start and works out its
    /// process, without starting it (so that a client can get its answer first: see
    /// [`Engine::exec_launch`]).
    pub fn exec_prepare(&self, id: &str) -> Result<PreparedExec> {
        let exec = self.exec_get(id)?;
        if exec.started {
            return Err(EngineError::Conflict(format!(
                "Error: Exec command {id} has already run"
            )));
        }
        let c = self.containers.get(&exec.container)?;
        if !c.is_running() {
            return Err(EngineError::Conflict(format!(
                "Container {} is not running",
                c.id
            )));
        }
        let cfg = &exec.config;
        let tty = cfg.tty.unwrap_or(false);
        let rootfs = self.run_dir(&c.id).join("rootfs");
        let user_spec = cfg
            .user
            .clone()
            .filter(|u| !u.is_empty())
            .or_else(|| c.config.user.clone())
            .unwrap_or_default();
        let user = users::resolve(&rootfs, &user_spec)?;
        let hostname = c.config.hostname.clone().unwrap_or_default();
        // The links' variables first, as the container's process got them (dockerd's
        // `CreateDaemonEnvironment`); a link gone since leaves them out.
        let mut container_env = self.check_links(&c).unwrap_or_default();
        container_env.extend(c.config.env.iter().flatten().cloned());
        let mut env = spec::environment(
            &container_env,
            cfg.env.as_deref().unwrap_or(&[]),
            &hostname,
            tty,
        );
        user.add_home(&mut env);
        let cwd = cfg
            .working_dir
            .clone()
            .filter(|w| !w.is_empty())
            .or_else(|| c.config.working_dir.clone())
            .filter(|w| !w.is_empty())
            .unwrap_or_else(|| "/".into());
        let mut hc = c.host_config.clone();
        if cfg.privileged == Some(true) {
            hc.privileged = Some(true);
        }
        let caps: Capabilities = spec::capabilities(&hc)
            .iter()
            .filter_map(|c| c.strip_prefix("CAP_")?.parse().ok())
            .collect();
        let mut capabilities = LinuxCapabilities::default();
        capabilities.set_bounding(Some(caps.clone()));
        capabilities.set_effective(Some(caps.clone()));
        capabilities.set_permitted(Some(caps));
        capabilities.set_inheritable(None);
        capabilities.set_ambient(None);
        let mut process_user = User::default();
        process_user.set_uid(user.uid);
        process_user.set_gid(user.gid);
        // As dockerd's `getUser`: the container's `--group-add` groups too.
        let mut additional_gids = user.additional_gids.clone();
        additional_gids.extend(spec::group_add_gids(&c.host_config, &rootfs)?);
        process_user.set_additional_gids(Some(additional_gids));
        // What is not set here is the runtime's default: no rlimits of the process's own.
        let mut process = Process::default();
        process.set_terminal(Some(tty));
        process.set_user(process_user);
        process.set_args(Some(cfg.cmd.clone().unwrap_or_default()));
        process.set_env(Some(env));
        process.set_cwd(cwd.into());
        process.set_capabilities(Some(capabilities));
        process.set_rlimits(None);
        // As dockerd: an exec of a `no-new-privileges` container has it too.
        process.set_no_new_privileges(spec::no_new_privileges(&c.host_config).then_some(true));
        if let Some(&[h, w]) = cfg.console_size.as_deref() {
            if tty && h > 0 && w > 0 {
                let size = oci_spec::runtime::BoxBuilder::default()
                    .height(h as u64)
                    .width(w as u64)
                    .build()
                    .map_err(|e| EngineError::internal("the exec's console size", e))?;
                process.set_console_size(Some(size));
            }
        }
        let request = Op::Exec {
            exec_id: id.to_string(),
            process: Box::new(process),
            tty,
            stdin: cfg.attach_stdin.unwrap_or(false),
        };
        Ok(PreparedExec {
            id: id.to_string(),
            container: c.id,
            name: c.name,
            tty,
            request,
        })
    }

    /// `POST /exec/{id}/start`, second half: starts the process; returns its stream (stdcopy
    /// frames without a tty). dockerd starts it once the client has its answer (the hijack):
    /// output sent together with the 101 could be read into a client's header buffer and lost
    /// (the Python SDK reads the raw socket after the headers).
    pub async fn exec_launch(&self, prepared: PreparedExec) -> Result<MonitorStream> {
        let sock = monitor::socket(&self.run_dir(&prepared.container));
        let stream = match monitor::open_unchecked(&sock, prepared.request).await? {
            (monitor::Reply { error: None, .. }, stream) => stream,
            (
                monitor::Reply {
                    error: Some(message),
                    ..
                },
                _,
            ) => {
                // The process could not start (no such program, not executable): dockerd records
                // an exit code and says why in the runtime's words.
                let (code, message) = start_failure(&message);
                if let Some(e) = self.execs_lock().get_mut(&prepared.id) {
                    e.started = true;
                    e.failed = Some(code);
                }
                return Err(EngineError::InvalidParameter(message));
            }
        };
        if let Some(e) = self.execs_lock().get_mut(&prepared.id) {
            e.started = true;
        }
        self.events.publish(
            berth_api::models::EventMessageTypeEnum::CONTAINER,
            "exec_start",
            &prepared.container,
            [("name".to_string(), prepared.name)].into(),
        );
        Ok(stream)
    }

    /// The detach keys of an exec with stdin (None without stdin: nothing to detach from).
    pub fn exec_detach_keys(&self, id: &str) -> Option<Option<String>> {
        let exec = self.exec_get(id).ok()?;
        exec.config
            .attach_stdin
            .unwrap_or(false)
            .then(|| exec.config.detach_keys.clone())
    }

    /// `POST /exec/{id}/resize`.
    pub async fn exec_resize(&self, id: &str, height: u32, width: u32) -> Result<()> {
        let exec = self.exec_get(id)?;
        let sock = monitor::socket(&self.run_dir(&exec.container));
        monitor::call::<monitor::Reply>(
            &sock,
            crate::attach::resize(Some(id.to_string()), height, width),
        )
        .await?;
        Ok(())
    }

    /// `GET /exec/{id}/json`.
    pub async fn exec_inspect(&self, id: &str) -> Result<ExecInspectResponse> {
        let exec = self.exec_get(id)?;
        let (running, exit_code, pid) = if let Some(code) = exec.failed {
            (false, Some(code), 0)
        } else if exec.started {
            let sock = monitor::socket(&self.run_dir(&exec.container));
            let op = Op::ExecState {
                exec_id: id.to_string(),
            };
            match monitor::call::<monitor::ExecState>(&sock, op).await {
                Ok(s) => (s.running, s.exit_code.map(i64::from), i64::from(s.pid)),
                // The container (and its monitor) is gone: the exec ended with it.
                Err(_) => (false, Some(137), 0),
            }
        } else {
            (false, None, 0)
        };
        let cmd = exec.config.cmd.clone().unwrap_or_default();
        Ok(ExecInspectResponse {
            can_remove: Some(false),
            detach_keys: Some(exec.config.detach_keys.clone().unwrap_or_default()),
            id: Some(exec.id.clone()),
            running: Some(running),
            exit_code,
            process_config: Some(ProcessConfig {
                privileged: exec.config.privileged,
                user: exec.config.user.clone(),
                tty: exec.config.tty,
                entrypoint: cmd.first().cloned(),
                arguments: Some(cmd.iter().skip(1).cloned().collect()),
            }),
            open_stdin: exec.config.attach_stdin,
            open_stderr: exec.config.attach_stderr,
            open_stdout: exec.config.attach_stdout,
            container_id: Some(exec.container.clone()),
            pid: Some(pid),
        })
    }
}

/// The exit code and dockerd's message for an exec whose process could not start: 127 when
/// the program is missing, 126 when it cannot be run (moby's `translateContainerdStartErr`).
fn start_failure(runtime_message: &str) -> (i64, String) {
    // (Berth's runtime says `container init: `; runc's message, through the monitor, has
    // dockerd's words before the cause already.)
    let cause = [
        "OCI runtime exec failed: ",
        "exec failed: ",
        "unable to start container process: ",
        "container init: ",
    ]
    .iter()
    .fold(runtime_message, |m, p| m.strip_prefix(p).unwrap_or(m));
    let missing = ["executable file not found", "no such file or directory"]
        .iter()
        .any(|m| cause.to_ascii_lowercase().contains(m));
    let message = format!(
        "OCI runtime exec failed: exec failed: unable to start container process: {cause}: unknown"
    );
    (if missing { 127 } else { 126 }, message)
}

#[cfg(test)]
mod tests {
    use super::start_failure;

    #[test]
    fn start_failures_read_as_dockerds() {
        let (code, text) =
            start_failure("container init: exec: \"nosuch\": executable file not found in $PATH");
        assert_eq!(code, 127);
        assert_eq!(
            text,
            "OCI runtime exec failed: exec failed: unable to start container process: exec: \"nosuch\": executable file not found in $PATH: unknown"
        );
        assert_eq!(start_failure("exec: \"/etc\": permission denied").0, 126);
        let runc = "OCI runtime exec failed: exec failed: unable to start container process: exec: \"nosuch\": executable file not found in $PATH";
        assert_eq!(start_failure(runc).1, text);
    }
}
