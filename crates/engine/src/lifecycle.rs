//! Start, stop, kill, wait, pause, remove, and what happens when a container exits (its
//! rootfs unmounted, its namespace removed, `--rm`, restart policies). After a daemon restart,
//! [`Engine::reconcile`] (`reconcile.rs`) takes the containers up again.

use std::path::Path;
use std::time::Duration;

use berth_api::models::EventMessageTypeEnum;

use berth_monitor::protocol::{ExitStatus, Op};
use nix::sys::signal::Signal;
use serde_json::json;

use crate::container::{now_rfc3339, Container, Status};
use crate::error::{EngineError, Result};
use crate::{monitor, spec, Engine};

/// How long `kill` with SIGKILL waits for the exit to be recorded (dockerd: 10 s).
const KILL_WAIT: Duration = Duration::from_secs(10);

/// Which exit `wait` waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitCondition {
    NotRunning,
    NextExit,
    Removed,
}

impl Engine {
    pub(crate) fn publish(&self, action: &str, c: &Container, extra: &[(&str, String)]) {
        let mut attrs: std::collections::HashMap<String, String> = [
            ("name".to_string(), c.name.clone()),
            (
                "image".to_string(),
                c.config.image.clone().unwrap_or_default(),
            ),
        ]
        .into();
        // dockerd's container events carry the container's labels too (the `label` filter).
        for (k, v) in c.config.labels.iter().flatten() {
            attrs.entry(k.clone()).or_insert_with(|| v.clone());
        }
        for (k, v) in extra {
            attrs.insert((*k).to_string(), v.clone());
        }
        self.events
            .publish(EventMessageTypeEnum::CONTAINER, action, &c.id, attrs);
    }

    /// `POST /containers/{id}/start`.
    pub async fn start(&self, key: &str) -> Result<()> {
        self.start_as(key, Starter::User).await
    }

    /// The start of a `restarting` container by its restart policy, once its wait is over:
    /// nothing if it was stopped or removed meanwhile (looked at under the lifecycle lock, so
    /// that a stop racing with it either calls it off or stops what it started).
    pub(crate) async fn start_by_policy(&self, id: &str) -> Result<()> {
        self.start_as(id, Starter::Policy).await
    }

    async fn start_as(&self, key: &str, starter: Starter) -> Result<()> {
        let c = self.containers.get(key)?;
        let guard = self.lifecycle_lock(&c.id).await;
        // Read again under the lock: the previous run's teardown has finished by now.
        let c = self.containers.get(&c.id)?;
        if starter == Starter::Policy {
            if c.manually_stopped || !c.is_restarting() {
                return Ok(());
            }
        } else if c.is_running() && !c.is_restarting() {
            return Err(EngineError::NotModified("container already started".into()));
        } else if c.restart_count != 0 || c.restart_delay_ms != 0 {
            // A user's start begins the policy's count and backoff again (dockerd's
            // `ResetRestartManager(true)`).
            self.containers.update_or_in_memory(&c.id, |c| {
                c.restart_count = 0;
                c.restart_delay_ms = 0;
            })?;
        }
        // Until the container runs (or the start failed and cleaned up).
        let _hold = crate::files::hold_rootfs(self.run_dir(&c.id).join("rootfs"));
        if self.has_runtime_leftovers(&c.id).await {
            // An earlier start cut short (the daemon died in it): its runtime container would
            // make this one "already exist".
            self.tear_down_runtime(&c.id).await?;
        }
        // And its rootfs mount or network namespace file (made, not yet bound, when it died)
        // would be taken for this start's.
        self.cleanup_after_exit(&c).await;
        let mut mounted = false;
        if let Err(e) = self.start_inner(&c, &mut mounted).await {
            self.disconnect_on_exit(&c.id).await;
            if mounted {
                self.publish_volume_unmounts(&c);
            }
            self.cleanup_after_exit(&c).await;
            let before = c.state.status;
            let _ = self.containers.update_or_in_memory(&c.id, |c| {
                c.state.status = before;
                c.state.pid = 0;
                c.state.error = e.to_string();
                c.state.exit_code = exit_code_of_start_error(&e.to_string());
            });
            drop(guard);
            // As dockerd: a container that was to be removed on exit is removed when it
            // cannot start (which ends a `wait?condition=removed`).
            if c.host_config.auto_remove == Some(true) {
                let _ = self.remove_with_volumes(&c.id, true, true).await;
            }
            return Err(e);
        }
        Ok(())
    }

    /// The start proper; `mounted` says once the volumes' `mount` events went out.
    async fn start_inner(&self, c: &Container, mounted: &mut bool) -> Result<()> {
        let run_dir = self.run_dir(&c.id);
        let rootfs = run_dir.join("rootfs");
        std::fs::create_dir_all(&rootfs).map_err(|e| EngineError::internal("mkdir rootfs", e))?;
        // A leftover of an earlier run of this container (the daemon died) goes first.
        let _ = std::fs::remove_file(run_dir.join("exit.json"));
        let t0 = std::time::Instant::now();
        let sandbox = self.sandbox(c)?;
        // The namespaces it joins (their containers checked) and a shareable /dev/shm mounted
        // (unmounted by `cleanup_after_exit`, also on an error).
        let sharing = self.sharing(c)?;
        // Volume plugins mount theirs (unmounted by `cleanup_after_exit`, also on an error).
        let plugin_volumes = self.mount_plugin_volumes(c).await?;
        // Mounts, a thread joined, files written: on a blocking thread, not an async worker.
        let sandbox = {
            let (engine, c, rootfs) = (self.clone(), c.clone(), rootfs.clone());
            tokio::task::spawn_blocking(move || -> Result<_> {
                // The network namespace is made on another thread while the rootfs is mounted
                // (on an error, it is waited for on drop, then removed with the rest by the
                // caller).
                let creating = sandbox
                    .new_netns
                    .then(|| crate::netns::Creating::start(&engine.netns_path(&c.id)));
                engine.mount_rootfs(&c, &rootfs)?;
                tracing::debug!(elapsed = ?t0.elapsed(), "rootfs mounted");
                if let Some(creating) = creating {
                    creating
                        .wait()
                        .map_err(|e| EngineError::internal("network namespace", e))?;
                }
                engine.prepare_etc(&c, &sandbox)?;
                if sandbox.writes_etc {
                    engine.chown_etc_files(&c, &sandbox.etc_dir)?;
                }
                Ok(sandbox)
            })
            .await
            .map_err(|e| EngineError::internal("prepare the container", e))??
        };
        let data_dir = &sandbox.etc_dir;
        // The manifest the container was made from: no search through every image.
        let image = c
            .image_manifest
            .parse()
            .ok()
            .and_then(|m| self.images.load(&m, None).ok());
        let image_config = image
            .as_ref()
            .map(|i| i.config["config"].clone())
            .unwrap_or(json!({}));
        let paths = spec::Paths {
            rootfs: &rootfs,
            hostname: &data_dir.join("hostname"),
            hosts: &data_dir.join("hosts"),
            resolv_conf: &data_dir.join("resolv.conf"),
            netns: sandbox.netns.as_deref(),
            volumes: &self.data_root().join("volumes"),
            subpaths: &run_dir.join("mounts"),
            plugin_volumes: &plugin_volumes,
            cgroups_path: crate::sharing::cgroups_path(&c.host_config, &c.id),
            sharing: &sharing,
            init: self.init_binary(c),
            seccomp: &self.config.seccomp_profile,
            userns: self.remap_of(c),
        };
        let mut config = spec::build(&sandbox.with_link_env(c), &image_config, &paths)?;
        let runtime = Self::runtime_name(c);
        let foreign = self.foreign_runtime(runtime)?.cloned();
        if let (None, Some(pin)) = (&foreign, &self.monitor_prep.mount_template) {
            // Berth's runtime copies the container's mount namespace from the template.
            let mut annotations = config.annotations().clone().unwrap_or_default();
            annotations.insert(
                berth_runtime::mount_template::ANNOTATION.to_string(),
                pin.display().to_string(),
            );
            config.set_annotations(Some(annotations));
        }
        // Its mounts are set up: dockerd says so of each volume (`unmount` follows the exit,
        // or a start that fails from here on).
        self.publish_volume_mounts(c);
        *mounted = true;
        let healthcheck = match crate::health::monitor_check(&c.config, config.process().as_ref())?
        {
            Some(check) => {
                let path = run_dir.join("healthcheck.json");
                std::fs::write(&path, berth_monitor::protocol::to_line(&check))
                    .map_err(|e| EngineError::internal("write healthcheck.json", e))?;
                Some(path)
            }
            None => None,
        };
        let bytes =
            serde_json::to_vec_pretty(&config).map_err(|e| EngineError::internal("encode", e))?;
        std::fs::write(run_dir.join("config.json"), bytes)
            .map_err(|e| EngineError::internal("write config.json", e))?;
        let log = crate::logs::driver::plan(&c.host_config, &c.log_path, &self.data_dir(&c.id));
        if let Some(dir) = log
            .path
            .parent()
            .filter(|_| log.driver == crate::logs::driver::LOCAL)
        {
            std::fs::create_dir_all(dir)
                .map_err(|e| EngineError::internal("create the log directory", e))?;
        }
        let launch = monitor::Launch {
            binary: self
                .monitor_prep
                .binary
                .clone()
                .unwrap_or_else(|| self.config.monitor.clone()),
            id: c.id.clone(),
            bundle: run_dir.clone(),
            runtime_root: self.runtime_root_of(runtime),
            state_dir: run_dir.clone(),
            log: log.path,
            log_driver: log.driver,
            log_max_size: log.max_size,
            log_max_file: log.max_file,
            log_compress: log.compress,
            tty: c.tty(),
            stdin: c.config.open_stdin.unwrap_or(false),
            stdin_once: c.config.stdin_once.unwrap_or(false),
            healthcheck,
            cgroup_mounts: self.monitor_prep.cgroup_mounts.clone(),
            foreign,
        };
        tracing::debug!(elapsed = ?t0.elapsed(), "config written");
        // The monitor creates the container while the networks are attached (veth, address,
        // route, published ports, then the /etc files again): both are needed by the start,
        // neither by the other.
        let (spawned, connected) =
            tokio::join!(monitor::spawn(&launch), self.connect_on_start(c, &sandbox));
        let pid = match (spawned, connected) {
            (Ok(pid), Ok(())) => pid,
            (Ok(pid), Err(e)) => {
                // The created container goes; its monitor records the end and exits.
                let _ =
                    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), Signal::SIGKILL);
                return Err(e);
            }
            (Err(e), _) => return Err(e),
        };
        tracing::debug!(elapsed = ?t0.elapsed(), "monitor ready, network attached");
        self.connect_pending_attaches(&c.id).await;
        // The record says "running" (its fsync) while the monitor starts the process; if the
        // start fails, `start` writes the state back.
        let record = {
            let engine = self.clone();
            let id = c.id.clone();
            tokio::task::spawn_blocking(move || {
                engine.containers.update(&id, |c| {
                    c.state.status = Status::Running;
                    c.state.pid = pid;
                    c.state.exit_code = 0;
                    c.state.error = String::new();
                    c.state.oom_killed = false;
                    c.state.started_at = now_rfc3339();
                    c.manually_stopped = false;
                })
            })
        };
        let begun = monitor::call::<monitor::Reply>(&monitor::socket(&run_dir), Op::Start).await;
        let started = record
            .await
            .map_err(|e| EngineError::internal("record the start", e))
            .and_then(|r| r);
        begun?;
        let started = match started {
            Ok(started) => started,
            Err(e) => {
                // The process runs but no record says so (a full disk): it goes, and the start
                // fails as a whole.
                if let Err(e) = self.tear_down_runtime(&c.id).await {
                    tracing::warn!(container = %c.id, error = %e, "tear down");
                }
                return Err(e);
            }
        };
        tracing::debug!(elapsed = ?t0.elapsed(), "started");
        self.publish("start", &started, &[]);
        self.watch_exit(started.id.clone());
        if run_dir.join("healthcheck.json").exists() {
            self.watch_health(started.id.clone());
        }
        Ok(())
    }

    /// The container's rootfs: a snapshot on its image's top layer, mounted at `target`.
    pub(crate) fn mount_rootfs(&self, c: &Container, target: &Path) -> Result<()> {
        let snapshots = &self.images.store.snapshots;
        let key = format!("container-{}", c.id);
        let mounts = match snapshots.mounts(&key) {
            Ok(m) => m,
            Err(_) => snapshots
                .prepare(&key, c.image_top.as_deref())
                .map_err(|e| EngineError::internal("prepare the container's rootfs", e))?,
        };
        if is_mountpoint(target) {
            return Ok(());
        }
        if let Some(remap) = self.remap_of(c) {
            let upper = snapshots.upper_dir(&key).ok();
            return crate::userns::rootfs::mount_container(
                &mounts,
                upper.as_deref(),
                target,
                remap,
            )
            .map_err(|e| EngineError::internal("mount the container's rootfs", e));
        }
        for m in &mounts {
            m.mount(target)
                .map_err(|e| EngineError::internal("mount the container's rootfs", e))?;
        }
        Ok(())
    }

    /// Waits (in a task) for the container's exit, then records it.
    pub(crate) fn watch_exit(&self, id: String) {
        let engine = self.clone();
        tokio::spawn(async move {
            let sock = monitor::socket(&engine.run_dir(&id));
            let answer = monitor::call::<ExitStatus>(&sock, Op::Wait).await;
            let exit = match answer {
                Ok(exit) => exit,
                Err(e) => match monitor::read_exit(&engine.run_dir(&id)) {
                    Some(exit) => exit,
                    None => {
                        // The monitor died (killed?) with the container still there: nobody
                        // could report its end. It ends now, as with containerd's shims.
                        tracing::warn!(container = %id, error = %e, "lost the monitor");
                        if let Err(e) = engine.tear_down_runtime(&id).await {
                            tracing::warn!(container = %id, error = %e, "tear down");
                        }
                        ExitStatus {
                            exit_code: crate::orphans::LOST_MONITOR_EXIT,
                            oom_killed: false,
                            finished_at: now_rfc3339(),
                        }
                    }
                },
            };
            tracing::debug!("exit reported");
            // Boxed: the task of each running container waits in the small future above, not
            // in one as large as everything that follows an exit.
            Box::pin(engine.handle_exit(&id, &sock, exit)).await;
        });
    }

    /// What follows a reported exit: the monitor deletes the runtime's container while the
    /// exit is recorded; what follows (waiters told, `--rm`, a restart) waits for both.
    async fn handle_exit(&self, id: &str, sock: &Path, exit: ExitStatus) {
        let shutdown = async {
            let _ = monitor::call::<monitor::Reply>(sock, Op::Shutdown).await;
        };
        let guard = self.lifecycle_lock(id).await;
        let ((), c) = tokio::join!(shutdown, self.record_exit(id, &exit));
        drop(guard);
        if let Some(c) = c {
            self.after_exit(c, &exit).await;
        }
        tracing::debug!("exit handled");
    }

    /// Records an exit, cleans up, and applies `--rm` or the restart policy.
    pub(crate) async fn on_exit(&self, id: &str, exit: ExitStatus) {
        let guard = self.lifecycle_lock(id).await;
        let recorded = self.record_exit(id, &exit).await;
        drop(guard);
        if let Some(c) = recorded {
            self.after_exit(c, &exit).await;
        }
    }

    /// Records an exit and unmounts what the container used (under the lifecycle lock).
    async fn record_exit(&self, id: &str, exit: &ExitStatus) -> Option<Container> {
        let mark_exited = |c: &mut Container| {
            c.state.status = Status::Exited;
            c.state.pid = 0;
            c.state.exit_code = i64::from(exit.exit_code);
            c.state.oom_killed = exit.oom_killed;
            c.state.finished_at = if exit.finished_at.is_empty() {
                now_rfc3339()
            } else {
                exit.finished_at.clone()
            };
            // Its policy starts it again: `restarting` until then, as dockerd says, and counted
            // now (dockerd counts a restart when it decides it, so the count a `restarting`
            // container shows is the restart it waits for).
            if crate::restart::wanted(c) {
                c.state.status = Status::Restarting;
                c.restart_count += 1;
                c.restart_delay_ms = crate::restart::next_delay(c);
            }
        };
        let auto_remove = self
            .containers
            .get(id)
            .is_ok_and(|c| c.host_config.auto_remove == Some(true));
        // A container removed right below needs no durable exit state; an exit that cannot be
        // written (a full disk) happened all the same.
        let updated = if auto_remove {
            self.containers.update_in_memory(id, mark_exited)
        } else {
            self.containers.update_or_in_memory(id, mark_exited)
        };
        let c = updated.ok()?;
        self.disconnect_on_exit(&c.id).await;
        self.publish_volume_unmounts(&c);
        self.cleanup_after_exit(&c).await;
        Some(c)
    }

    /// Tells the exit, then applies `--rm` or the restart policy.
    async fn after_exit(&self, c: Container, exit: &ExitStatus) {
        let id = c.id.as_str();
        if exit.oom_killed {
            self.publish("oom", &c, &[]);
        }
        self.publish("die", &c, &[("exitCode", exit.exit_code.to_string())]);
        self.exit_channel(id).send_modify(|s| s.exits += 1);
        if c.host_config.auto_remove == Some(true) {
            if let Err(e) = self.remove_with_volumes(id, true, true).await {
                tracing::warn!(container = %id, error = %e, "auto-remove");
            }
            return;
        }
        if c.is_restarting() {
            self.restart_later(id.to_string(), Duration::from_millis(c.restart_delay_ms));
        }
    }

    /// Unmounts the plugin volumes, the rootfs and the volume subpaths, and removes the network
    /// namespace of an exited container.
    pub(crate) async fn cleanup_after_exit(&self, c: &Container) {
        self.unmount_plugin_volumes(c).await;
        let run_dir = self.run_dir(&c.id);
        let rootfs = run_dir.join("rootfs");
        crate::mounts::oci::release(&run_dir.join("mounts"));
        self.unmount_shm(&c.id);
        while is_mountpoint(&rootfs) {
            if nix::mount::umount2(&rootfs, nix::mount::MntFlags::MNT_DETACH).is_err() {
                break;
            }
        }
        if let Err(e) = crate::netns::remove(&self.netns_path(&c.id)) {
            tracing::warn!(container = %c.id, error = %e, "removing the network namespace");
        }
    }

    /// `POST /containers/{id}/kill?signal=`. As dockerd, a SIGKILL returns once the container
    /// has exited and its exit is recorded (for at most [`KILL_WAIT`]), so that what a client
    /// does next (inspect, remove, start) sees it stopped.
    pub async fn kill(&self, key: &str, signal: Option<&str>) -> Result<()> {
        let c = self.containers.get(key)?;
        if c.is_restarting() {
            return Err(EngineError::Conflict(format!(
                "Cannot kill container: {key}: Container {} is restarting, wait until the container is running",
                c.id
            )));
        }
        if !c.is_running() {
            return Err(EngineError::Conflict(format!(
                "Cannot kill container: {key}: Container {} is not running",
                c.id
            )));
        }
        let sig = parse_signal(signal.unwrap_or("KILL"))?;
        let mut rx = self.exit_channel(&c.id).subscribe();
        let seen = rx.borrow_and_update().exits;
        self.signal(&c, sig)?;
        self.publish("kill", &c, &[("signal", (sig as i32).to_string())]);
        if sig == Signal::SIGKILL {
            let exited = rx.wait_for(|s| s.exits != seen || s.removed.is_some());
            if tokio::time::timeout(KILL_WAIT, exited).await.is_err() {
                tracing::warn!(container = %c.id, "still running {KILL_WAIT:?} after SIGKILL");
            }
        }
        Ok(())
    }

    fn signal(&self, c: &Container, sig: Signal) -> Result<()> {
        self.driver(c)?
            .kill(&c.id, sig, false)
            .map_err(|e| EngineError::internal("kill", e))
    }

    /// `POST /containers/{id}/stop?t=`: the stop signal, then SIGKILL after the timeout.
    pub async fn stop(&self, key: &str, timeout: Option<i64>, signal: Option<&str>) -> Result<()> {
        let id = self.containers.get(key)?.id;
        // The stop is marked under the lifecycle lock: a start by the policy (or an exit's
        // record) under way ends first, and one after it sees the mark. The process signalled
        // is then the one that runs now, not one the policy has replaced meanwhile.
        let (c, mut rx, seen) = {
            let _guard = self.lifecycle_lock(&id).await;
            // The exits counted from here: none is recorded while the lock is held.
            let mut rx = self.exit_channel(&id).subscribe();
            let seen = *rx.borrow_and_update();
            let c = self.containers.get(&id)?;
            if c.is_restarting() {
                // No process: the restart is called off (dockerd's stop of a restarting
                // container).
                let c = self.containers.update_or_in_memory(&id, |c| {
                    c.manually_stopped = true;
                    c.state.status = Status::Exited;
                })?;
                self.publish("stop", &c, &[]);
                return Ok(());
            }
            let c = self
                .containers
                .update_or_in_memory(&id, |c| c.manually_stopped = true)?;
            (c, rx, seen)
        };
        if !c.is_running() {
            return Err(EngineError::NotModified("container already stopped".into()));
        }
        let sig = parse_signal(
            signal
                .or(c.config.stop_signal.as_deref())
                .unwrap_or("SIGTERM"),
        )?;
        let secs = timeout.or(c.config.stop_timeout).unwrap_or(10).max(0) as u64;
        let exited_since = move |s: &crate::ExitState| s.exits != seen.exits || s.removed.is_some();
        if c.state.status == Status::Paused {
            let _ = self.unpause(&c.id);
        }
        let _ = self.signal(&c, sig);
        let exited = tokio::time::timeout(Duration::from_secs(secs), rx.wait_for(exited_since))
            .await
            .is_ok();
        if !exited {
            let _ = self.signal(&c, Signal::SIGKILL);
            let _ = tokio::time::timeout(Duration::from_secs(30), rx.wait_for(exited_since)).await;
        }
        let c = self.containers.get(&c.id)?;
        self.publish("stop", &c, &[]);
        Ok(())
    }

    /// `POST /containers/{id}/restart`.
    pub async fn restart(&self, key: &str, timeout: Option<i64>) -> Result<()> {
        match self.stop(key, timeout, None).await {
            Ok(()) | Err(EngineError::NotModified(_)) => {}
            Err(e) => return Err(e),
        }
        self.start(key).await?;
        let c = self.containers.get(key)?;
        self.publish("restart", &c, &[]);
        Ok(())
    }

    /// `POST /containers/{id}/pause`.
    pub fn pause(&self, key: &str) -> Result<()> {
        let c = self.containers.get(key)?;
        if c.state.status != Status::Running {
            return Err(EngineError::Conflict(format!(
                "Container {} is not running",
                c.id
            )));
        }
        self.driver(&c)?
            .pause(&c.id)
            .map_err(|e| EngineError::internal("pause", e))?;
        let c = self
            .containers
            .update(&c.id, |c| c.state.status = Status::Paused)?;
        self.publish("pause", &c, &[]);
        Ok(())
    }

    /// `POST /containers/{id}/unpause`.
    pub fn unpause(&self, key: &str) -> Result<()> {
        let c = self.containers.get(key)?;
        if c.state.status != Status::Paused {
            return Err(EngineError::Conflict(format!(
                "Container {} is not paused",
                c.id
            )));
        }
        self.driver(&c)?
            .resume(&c.id)
            .map_err(|e| EngineError::internal("unpause", e))?;
        let c = self
            .containers
            .update(&c.id, |c| c.state.status = Status::Running)?;
        self.publish("unpause", &c, &[]);
        Ok(())
    }

    /// `POST /containers/{id}/wait?condition=`: waits, then returns the exit code.
    pub async fn wait(&self, key: &str, condition: WaitCondition) -> Result<i64> {
        let c = self.containers.get(key)?;
        let mut rx = self.exit_channel(&c.id).subscribe();
        let seen = *rx.borrow_and_update();
        let state = match condition {
            WaitCondition::NotRunning if !c.is_running() => return Ok(c.state.exit_code),
            WaitCondition::NotRunning | WaitCondition::NextExit => rx
                .wait_for(|s| s.exits != seen.exits || s.removed.is_some())
                .await
                .map(|s| *s),
            WaitCondition::Removed => rx.wait_for(|s| s.removed.is_some()).await.map(|s| *s),
        };
        // The record may be gone (removed): then its last exit code came with the channel.
        if let Ok(Some(code)) = state.map(|s| s.removed) {
            return Ok(code);
        }
        Ok(self
            .containers
            .get(&c.id)
            .map(|c| c.state.exit_code)
            .unwrap_or(0))
    }

    /// `DELETE /containers/{id}?force=`.
    pub async fn remove(&self, key: &str, force: bool) -> Result<()> {
        self.remove_with_volumes(key, force, false).await
    }

    /// `DELETE /containers/{id}?force=&v=`: with `volumes`, its anonymous volumes go too.
    pub async fn remove_with_volumes(&self, key: &str, force: bool, volumes: bool) -> Result<()> {
        let c = self.containers.get(key)?;
        if c.is_restarting() {
            if !force {
                return Err(EngineError::Conflict(format!(
                    "You cannot remove a restarting container {}. Stop the container before attempting removal or force remove",
                    c.id
                )));
            }
            // No process to kill: the restart is called off.
            let _ = self.containers.update_or_in_memory(&c.id, |c| {
                c.manually_stopped = true;
                c.state.status = Status::Exited;
            });
        }
        let c = self.containers.get(&c.id)?;
        if c.is_running() {
            if !force {
                return Err(EngineError::Conflict(format!(
                    "You cannot remove a running container {}. Stop the container before attempting removal or force remove",
                    c.id
                )));
            }
            let mut rx = self.exit_channel(&c.id).subscribe();
            let seen = rx.borrow_and_update().exits;
            // About to be removed: on a full disk, in memory only.
            let _ = self.containers.update_or_in_memory(&c.id, |c| {
                c.manually_stopped = true;
                c.host_config.auto_remove = Some(false);
            });
            let _ = self.signal(&c, Signal::SIGKILL);
            let _ = tokio::time::timeout(Duration::from_secs(30), rx.wait_for(|s| s.exits != seen))
                .await;
        }
        let _guard = self.lifecycle_lock(&c.id).await;
        let c = self.containers.get(&c.id)?;
        if c.is_running() {
            // Started again meanwhile (a restart policy, another client).
            return Err(EngineError::Conflict(format!(
                "You cannot remove a running container {}. Stop the container before attempting removal or force remove",
                c.id
            )));
        }
        // Whatever a lost monitor or an interrupted start left goes with the record.
        if let Err(e) = self.tear_down_runtime(&c.id).await {
            tracing::warn!(container = %c.id, error = %e, "tear down");
        }
        self.disconnect_on_exit(&c.id).await;
        self.cleanup_after_exit(&c).await;
        if let Ok(manifest) = c.image_manifest.parse() {
            let _ = self.images.store.metadata.remove_user(&manifest, &c.id);
        }
        let _ = std::fs::remove_dir_all(self.run_dir(&c.id));
        self.containers.remove(&c.id)?;
        // The container is gone (its record moved away): its files are deleted meanwhile.
        self.images
            .remove_snapshot_later(format!("container-{}", c.id));
        if volumes {
            // A plugin's volume is removed through its plugin: off the async workers.
            let (engine, gone) = (self.clone(), c.clone());
            let removing =
                tokio::task::spawn_blocking(move || engine.remove_anonymous_volumes(&gone));
            if let Err(e) = removing.await {
                tracing::warn!(container = %c.id, error = %e, "removing the anonymous volumes");
            }
        }
        self.publish("destroy", &c, &[]);
        self.forget(&c.id, c.state.exit_code);
        Ok(())
    }

    /// `POST /containers/{id}/rename?name=`.
    pub fn rename(&self, key: &str, name: &str) -> Result<()> {
        let name = name.strip_prefix('/').unwrap_or(name);
        if !crate::ids::valid_name(name) {
            return Err(EngineError::InvalidParameter(format!(
                "Invalid container name ({name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
            )));
        }
        let c = self.containers.get(key)?;
        let old = c.name.clone();
        let c = self.containers.rename(&c.id, name)?;
        self.publish("rename", &c, &[("oldName", format!("/{old}"))]);
        Ok(())
    }
}

/// Docker's exit codes for failed starts: 127 not found, 126 cannot execute, else 125... but
/// recorded on the container as 127/126/128 as dockerd does.
fn exit_code_of_start_error(message: &str) -> i64 {
    if message.contains("executable file not found")
        || message.contains("no such file or directory")
    {
        127
    } else if message.contains("permission denied") {
        126
    } else {
        128
    }
}

/// `SIGTERM`, `TERM`, `15`.
pub fn parse_signal(s: &str) -> Result<Signal> {
    if let Ok(n) = s.parse::<i32>() {
        return Signal::try_from(n)
            .map_err(|_| EngineError::InvalidParameter(format!("Invalid signal: {s}")));
    }
    let up = s.to_uppercase();
    let name = if up.starts_with("SIG") {
        up
    } else {
        format!("SIG{up}")
    };
    name.parse::<Signal>()
        .map_err(|_| EngineError::InvalidParameter(format!("Invalid signal: {s}")))
}

/// `10m`, `1g`, `512k`, `100` (bytes), also `20GB`, `3MiB`, `100b` (Docker's `RAMInBytes`:
/// binary multiples whatever the spelling).
pub fn parse_size(s: &str) -> Option<u64> {
    let lower = s.trim().to_lowercase();
    let s = lower
        .strip_suffix("ib")
        .or_else(|| lower.strip_suffix('b'))
        .unwrap_or(&lower);
    let unit = |suffix: char, mult: u64| s.strip_suffix(suffix).map(|num| (num, mult));
    let (num, mult) = unit('k', 1 << 10)
        .or_else(|| unit('m', 1 << 20))
        .or_else(|| unit('g', 1 << 30))
        .or_else(|| unit('t', 1 << 40))
        .unwrap_or((s, 1));
    num.parse::<u64>().ok().and_then(|n| n.checked_mul(mult))
}

pub(crate) fn is_mountpoint(path: &Path) -> bool {
    let Ok(meta) = std::fs::metadata(path) else {
        return false;
    };
    let Some(parent) = path.parent().and_then(|p| std::fs::metadata(p).ok()) else {
        return false;
    };
    use std::os::unix::fs::MetadataExt;
    meta.dev() != parent.dev() || meta.ino() == parent.ino()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_and_sizes_parse() {
        assert_eq!(parse_signal("TERM").unwrap(), Signal::SIGTERM);
        assert_eq!(parse_signal("sigkill").unwrap(), Signal::SIGKILL);
        assert_eq!(parse_signal("9").unwrap(), Signal::SIGKILL);
        assert!(parse_signal("NOPE").is_err());
        assert_eq!(parse_size("10m"), Some(10 << 20));
        assert_eq!(parse_size("100"), Some(100));
        assert_eq!(parse_size("100b"), Some(100));
        assert_eq!(parse_size("3MB"), Some(3 << 20));
        assert_eq!(parse_size("20GiB"), Some(20 << 30));
        assert_eq!(parse_size("1kb"), Some(1 << 10));
        assert_eq!(parse_size("99999999999999999g"), None);
        assert_eq!(parse_size("é"), None);
    }
}

/// Who starts a container: a user (the API), or its restart policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Starter {
    User,
    Policy,
}
