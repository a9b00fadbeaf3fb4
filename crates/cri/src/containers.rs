//! A pod's containers: engine containers in their sandbox's namespaces (`container:<sandbox>`
//! network, IPC and UTS modes, the PID one when the pod shares it) and under its pod cgroup,
//! logging in the CRI format to the file kubelet names.

use std::collections::HashMap;
use std::path::Path;

use berth_api::models::{
    ContainerCreateBody, ContainerUpdateBody, DeviceMapping, HostConfig, HostConfigLogConfig,
    Mount, MountBindOptions, MountBindOptionsPropagationEnum, MountType,
};
use berth_engine::container::{Container, Status as EngineStatus};
use berth_engine::error::EngineError;
use k8s_cri::v1 as cri;
use k8s_cri::v1::NamespaceMode;
use tonic::Status;

use crate::pods::{clamp_oom_score_adj, ignore_gone};
use crate::record::{
    from_map, nanos, selected, to_map, ContainerRecord, MountRecord, Record, SandboxRecord,
};
use crate::{security, status, Cri};

/// The log driver of CRI containers: the monitor writes kubelet's format to `path`.
pub const LOG_DRIVER: &str = "cri";

/// The engine name of a container, as dockershim named them.
fn container_name(m: &cri::ContainerMetadata, pod: &SandboxRecord) -> String {
    format!(
        "k8s_{}_{}_{}_{}_{}",
        m.name, pod.name, pod.namespace, pod.uid, m.attempt
    )
}

impl Cri {
    /// The CRI container `id` names (an id or a unique prefix), with its record.
    pub(crate) fn container(&self, id: &str) -> Result<(Container, ContainerRecord), Status> {
        self.object("container", id, |r| match r {
            Record::Container(r) => Some(r),
            Record::Sandbox(_) => None,
        })
    }

    /// Every CRI container (of every pod).
    pub(crate) fn containers(&self) -> Vec<(Container, ContainerRecord)> {
        self.objects(|r| match r {
            Record::Container(r) => Some(r),
            Record::Sandbox(_) => None,
        })
    }

    /// The containers of one sandbox.
    pub(crate) fn pod_containers(&self, sandbox: &str) -> Vec<(Container, ContainerRecord)> {
        let mut all = self.containers();
        all.retain(|(_, r)| r.sandbox_id == sandbox);
        all
    }

    pub(crate) async fn create_container(
        &self,
        req: cri::CreateContainerRequest,
    ) -> Result<String, Status> {
        let (sandbox, pod) = self.sandbox(&req.pod_sandbox_id)?;
        let config = req
            .config
            .ok_or_else(|| Status::invalid_argument("no container config given"))?;
        let meta = config
            .metadata
            .clone()
            .filter(|m| !m.name.is_empty())
            .ok_or_else(|| Status::invalid_argument("no container metadata name given"))?;
        let image = config
            .image
            .as_ref()
            .map(|i| i.image.trim().to_string())
            .filter(|i| !i.is_empty())
            .ok_or_else(|| Status::invalid_argument("no container image given"))?;
        let log_path = match (pod.log_directory.as_str(), config.log_path.as_str()) {
            ("", _) | (_, "") => String::new(),
            (dir, file) => Path::new(dir).join(file).display().to_string(),
        };
        if !log_path.is_empty() {
            if let Some(dir) = Path::new(&log_path).parent() {
                std::fs::create_dir_all(dir).map_err(|e| {
                    Status::internal(format!("creating log directory {}: {e}", dir.display()))
                })?;
            }
        }
        let record = ContainerRecord {
            sandbox_id: sandbox.id.clone(),
            name: meta.name.clone(),
            attempt: meta.attempt,
            labels: from_map(&config.labels),
            annotations: from_map(&config.annotations),
            image: image.clone(),
            log_path: log_path.clone(),
            mounts: config
                .mounts
                .iter()
                .map(|m| MountRecord {
                    container_path: m.container_path.clone(),
                    host_path: m.host_path.clone(),
                    readonly: m.readonly,
                    propagation: m.propagation,
                })
                .collect(),
        };
        let body = container_body(&config, &sandbox.id, &pod, &record, &image)?;
        let name = container_name(&meta, &pod);
        let engine = self.engine.clone();
        let (id, _) = tokio::task::spawn_blocking(move || engine.create(Some(&name), body))
            .await
            .map_err(|e| Status::internal(e.to_string()))?
            .map_err(|e| match e {
                EngineError::Conflict(m) => Status::already_exists(m),
                other => status(other),
            })?;
        Ok(id)
    }

    pub(crate) async fn start_container(&self, id: &str) -> Result<(), Status> {
        let (c, r) = self.container(id)?;
        let (sandbox, _) = self.sandbox(&r.sandbox_id)?;
        if !sandbox.is_running() {
            return Err(Status::failed_precondition(format!(
                "sandbox container {:?} is not running",
                sandbox.id
            )));
        }
        if c.state.status != EngineStatus::Created {
            return Err(Status::failed_precondition(format!(
                "container {:?} is in {} state",
                c.id,
                c.state.status.as_str()
            )));
        }
        self.engine.start(&c.id).await.map_err(status)
    }

    pub(crate) async fn stop_container(&self, id: &str, timeout: i64) -> Result<(), Status> {
        let (c, _) = self.container(id)?;
        if !c.is_running() {
            return Ok(());
        }
        self.engine
            .stop(&c.id, Some(timeout.max(0)), None)
            .await
            .or_else(ignore_gone)
            .map_err(status)
    }

    pub(crate) async fn remove_container(&self, id: &str) -> Result<(), Status> {
        let c = match self.container(id) {
            Ok((c, _)) => c,
            Err(e) if e.code() == tonic::Code::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        self.engine
            .remove(&c.id, true)
            .await
            .or_else(ignore_gone)
            .map_err(status)
    }

    pub(crate) fn list_containers(
        &self,
        filter: Option<cri::ContainerFilter>,
    ) -> Vec<cri::Container> {
        let filter = filter.unwrap_or_default();
        let mut out: Vec<cri::Container> = self
            .containers()
            .into_iter()
            .filter(|(c, r)| {
                (filter.id.is_empty() || c.id.starts_with(&filter.id))
                    && (filter.pod_sandbox_id.is_empty()
                        || r.sandbox_id.starts_with(&filter.pod_sandbox_id))
                    && filter
                        .state
                        .as_ref()
                        .is_none_or(|s| s.state == state(c) as i32)
                    && selected(&r.labels, &filter.label_selector)
            })
            .map(|(c, r)| cri::Container {
                id: c.id.clone(),
                pod_sandbox_id: r.sandbox_id.clone(),
                metadata: Some(metadata(&r)),
                image: Some(image_spec(&r)),
                image_ref: c.image_id.clone(),
                state: state(&c) as i32,
                created_at: nanos(&c.created),
                labels: to_map(&r.labels),
                annotations: to_map(&r.annotations),
                image_id: c.image_id.clone(),
            })
            .collect();
        out.sort_by_key(|x| std::cmp::Reverse(x.created_at));
        out
    }

    pub(crate) fn container_status(
        &self,
        id: &str,
        verbose: bool,
    ) -> Result<cri::ContainerStatusResponse, Status> {
        let (c, r) = self.container(id)?;
        let st = state(&c);
        let reason = match st {
            cri::ContainerState::ContainerExited if c.state.oom_killed => "OOMKilled",
            cri::ContainerState::ContainerExited if c.state.exit_code == 0 => "Completed",
            cri::ContainerState::ContainerExited => "Error",
            _ => "",
        };
        let status = cri::ContainerStatus {
            id: c.id.clone(),
            metadata: Some(metadata(&r)),
            state: st as i32,
            created_at: nanos(&c.created),
            started_at: nanos(&c.state.started_at),
            finished_at: if st == cri::ContainerState::ContainerExited {
                nanos(&c.state.finished_at)
            } else {
                0
            },
            exit_code: i32::try_from(c.state.exit_code).unwrap_or(-1),
            image: Some(image_spec(&r)),
            image_ref: c.image_id.clone(),
            reason: reason.to_string(),
            message: c.state.error.clone(),
            labels: to_map(&r.labels),
            annotations: to_map(&r.annotations),
            mounts: r
                .mounts
                .iter()
                .map(|m| cri::Mount {
                    container_path: m.container_path.clone(),
                    host_path: m.host_path.clone(),
                    readonly: m.readonly,
                    propagation: m.propagation,
                    ..Default::default()
                })
                .collect(),
            log_path: r.log_path.clone(),
            image_id: c.image_id.clone(),
            ..Default::default()
        };
        let mut info = HashMap::new();
        if verbose {
            let details = serde_json::json!({
                "pid": c.state.pid,
                "sandboxID": r.sandbox_id,
                "runtimeType": crate::RUNTIME_NAME,
                "path": c.path,
                "args": c.args,
                "record": r,
            });
            info.insert("info".to_string(), details.to_string());
        }
        Ok(cri::ContainerStatusResponse {
            status: Some(status),
            info,
        })
    }

    pub(crate) fn update_container_resources(
        &self,
        req: cri::UpdateContainerResourcesRequest,
    ) -> Result<(), Status> {
        let (c, _) = self.container(&req.container_id)?;
        let Some(r) = req.linux else { return Ok(()) };
        let positive = |v: i64| (v > 0).then_some(v);
        let body = ContainerUpdateBody {
            cpu_period: positive(r.cpu_period),
            cpu_quota: positive(r.cpu_quota),
            cpu_shares: positive(r.cpu_shares),
            memory: positive(r.memory_limit_in_bytes),
            memory_swap: positive(r.memory_swap_limit_in_bytes),
            cpuset_cpus: Some(r.cpuset_cpus).filter(|s| !s.is_empty()),
            cpuset_mems: Some(r.cpuset_mems).filter(|s| !s.is_empty()),
            ..Default::default()
        };
        self.engine.update(&c.id, &body).map(|_| ()).map_err(status)
    }
}

fn metadata(r: &ContainerRecord) -> cri::ContainerMetadata {
    cri::ContainerMetadata {
        name: r.name.clone(),
        attempt: r.attempt,
    }
}

fn image_spec(r: &ContainerRecord) -> cri::ImageSpec {
    cri::ImageSpec {
        image: r.image.clone(),
        ..Default::default()
    }
}

/// The CRI state of an engine container.
pub(crate) fn state(c: &Container) -> cri::ContainerState {
    match c.state.status {
        EngineStatus::Created => cri::ContainerState::ContainerCreated,
        EngineStatus::Running | EngineStatus::Paused | EngineStatus::Restarting => {
            cri::ContainerState::ContainerRunning
        }
        EngineStatus::Exited | EngineStatus::Dead => cri::ContainerState::ContainerExited,
        EngineStatus::Removing => cri::ContainerState::ContainerUnknown,
    }
}

/// The engine's mount of a CRI one; a missing host directory is made, as containerd does.
fn mount(m: &cri::Mount) -> Result<Mount, Status> {
    if !m.container_path.starts_with('/') || !m.host_path.starts_with('/') {
        return Err(Status::invalid_argument(format!(
            "mount {:?} -> {:?}: paths must be absolute",
            m.host_path, m.container_path
        )));
    }
    if std::fs::symlink_metadata(&m.host_path).is_err() {
        std::fs::create_dir_all(&m.host_path).map_err(|e| {
            Status::internal(format!("creating mount source {:?}: {e}", m.host_path))
        })?;
    }
    let propagation = match cri::MountPropagation::try_from(m.propagation) {
        Ok(cri::MountPropagation::PropagationHostToContainer) => {
            MountBindOptionsPropagationEnum::RSLAVE
        }
        Ok(cri::MountPropagation::PropagationBidirectional) => {
            MountBindOptionsPropagationEnum::RSHARED
        }
        _ => MountBindOptionsPropagationEnum::RPRIVATE,
    };
    Ok(Mount {
        target: Some(m.container_path.clone()),
        source: Some(m.host_path.clone()),
        typ: Some(MountType::BIND),
        read_only: Some(m.readonly),
        bind_options: Some(MountBindOptions {
            propagation: Some(propagation),
            ..Default::default()
        }),
        ..Default::default()
    })
}

/// The engine's create body of a pod's container.
fn container_body(
    config: &cri::ContainerConfig,
    sandbox_id: &str,
    pod: &SandboxRecord,
    record: &ContainerRecord,
    image: &str,
) -> Result<ContainerCreateBody, Status> {
    let linux = config.linux.clone().unwrap_or_default();
    let sc = linux.security_context.clone().unwrap_or_default();
    let res = linux.resources.clone().unwrap_or_default();
    let ns = sc.namespace_options.clone().unwrap_or_default();
    let join = format!("container:{sandbox_id}");
    let node = |mode: i32| mode == NamespaceMode::Node as i32;
    let pid_mode = match NamespaceMode::try_from(ns.pid) {
        Ok(NamespaceMode::Pod) => Some(join.clone()),
        Ok(NamespaceMode::Node) => Some("host".to_string()),
        Ok(NamespaceMode::Target) if !ns.target_id.is_empty() => {
            Some(format!("container:{}", ns.target_id))
        }
        _ => None,
    };
    let caps = sc.capabilities.clone().unwrap_or_default();
    let non_empty = |v: Vec<String>| (!v.is_empty()).then_some(v);
    let positive = |v: i64| (v > 0).then_some(v);
    let mut security_opt = Vec::new();
    let seccomp = security::seccomp_opt(sc.seccomp.as_ref())?;
    if !seccomp.is_empty() {
        security_opt.push(seccomp);
    }
    if sc.no_new_privs {
        security_opt.push("no-new-privileges".to_string());
    }
    let mounts = config
        .mounts
        .iter()
        .map(mount)
        .collect::<Result<Vec<_>, _>>()?;
    let devices: Vec<DeviceMapping> = config
        .devices
        .iter()
        .map(|d| DeviceMapping {
            path_on_host: Some(d.host_path.clone()),
            path_in_container: Some(d.container_path.clone()),
            cgroup_permissions: Some(d.permissions.clone()).filter(|p| !p.is_empty()),
        })
        .collect();
    let log_config = if record.log_path.is_empty() {
        HostConfigLogConfig {
            typ: Some("none".to_string()),
            config: None,
        }
    } else {
        HostConfigLogConfig {
            typ: Some(LOG_DRIVER.to_string()),
            config: Some([("path".to_string(), record.log_path.clone())].into()),
        }
    };
    let host_config = HostConfig {
        network_mode: Some(if node(pod.network_mode) {
            "host".into()
        } else {
            join.clone()
        }),
        ipc_mode: Some(if node(pod.ipc_mode) {
            "host".into()
        } else {
            join.clone()
        }),
        uts_mode: Some(if node(pod.network_mode) {
            "host".into()
        } else {
            join
        }),
        pid_mode,
        cgroup_parent: Some(pod.cgroup_parent.clone()).filter(|p| !p.is_empty()),
        mounts: non_empty_mounts(mounts),
        devices: (!devices.is_empty()).then_some(devices),
        cap_add: non_empty(
            caps.add_capabilities
                .iter()
                .map(|c| security::capability(c))
                .collect(),
        ),
        cap_drop: non_empty(
            caps.drop_capabilities
                .iter()
                .map(|c| security::capability(c))
                .collect(),
        ),
        privileged: Some(sc.privileged),
        readonly_rootfs: Some(sc.readonly_rootfs),
        security_opt: non_empty(security_opt),
        masked_paths: Some(sc.masked_paths.clone()).filter(|_| !sc.masked_paths.is_empty()),
        readonly_paths: Some(sc.readonly_paths.clone()).filter(|_| !sc.readonly_paths.is_empty()),
        group_add: non_empty(sc.supplemental_groups.iter().map(i64::to_string).collect()),
        oom_score_adj: (res.oom_score_adj != 0).then(|| clamp_oom_score_adj(res.oom_score_adj)),
        memory: positive(res.memory_limit_in_bytes),
        memory_swap: positive(res.memory_swap_limit_in_bytes),
        cpu_period: positive(res.cpu_period),
        cpu_quota: positive(res.cpu_quota),
        cpu_shares: positive(res.cpu_shares),
        cpuset_cpus: Some(res.cpuset_cpus.clone()).filter(|s| !s.is_empty()),
        cpuset_mems: Some(res.cpuset_mems.clone()).filter(|s| !s.is_empty()),
        log_config: Some(log_config),
        init: Some(false),
        ..Default::default()
    };
    let (entrypoint, cmd) = if config.command.is_empty() {
        (None, Some(config.args.clone()).filter(|a| !a.is_empty()))
    } else {
        (Some(config.command.clone()), Some(config.args.clone()))
    };
    Ok(ContainerCreateBody {
        image: Some(image.to_string()),
        entrypoint,
        cmd,
        working_dir: Some(config.working_dir.clone()).filter(|w| !w.is_empty()),
        env: Some(
            config
                .envs
                .iter()
                .map(|kv| format!("{}={}", kv.key, kv.value))
                .collect(),
        ),
        user: security::user(
            sc.run_as_user.as_ref(),
            sc.run_as_group.as_ref(),
            &sc.run_as_username,
        ),
        tty: Some(config.tty),
        open_stdin: Some(config.stdin),
        stdin_once: Some(config.stdin_once),
        attach_stdin: Some(config.stdin),
        attach_stdout: Some(true),
        attach_stderr: Some(!config.tty),
        labels: Some(Record::Container(record.clone()).label()),
        host_config: Some(host_config),
        ..Default::default()
    })
}

fn non_empty_mounts(m: Vec<Mount>) -> Option<Vec<Mount>> {
    (!m.is_empty()).then_some(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_container_joins_its_sandboxs_namespaces() {
        let config = cri::ContainerConfig {
            metadata: Some(cri::ContainerMetadata {
                name: "app".into(),
                attempt: 0,
            }),
            command: vec!["sh".into()],
            linux: Some(cri::LinuxContainerConfig {
                security_context: Some(cri::LinuxContainerSecurityContext {
                    namespace_options: Some(cri::NamespaceOption {
                        pid: NamespaceMode::Pod as i32,
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        let pod = SandboxRecord {
            cgroup_parent: "/kubepods/pod1".into(),
            ..Default::default()
        };
        let record = ContainerRecord {
            log_path: "/var/log/pods/x/app/0.log".into(),
            ..Default::default()
        };
        let body = container_body(&config, "sb", &pod, &record, "busybox").unwrap();
        let hc = body.host_config.unwrap();
        assert_eq!(hc.network_mode.as_deref(), Some("container:sb"));
        assert_eq!(hc.ipc_mode.as_deref(), Some("container:sb"));
        assert_eq!(hc.uts_mode.as_deref(), Some("container:sb"));
        assert_eq!(hc.pid_mode.as_deref(), Some("container:sb"));
        assert_eq!(hc.cgroup_parent.as_deref(), Some("/kubepods/pod1"));
        assert_eq!(hc.log_config.unwrap().typ.as_deref(), Some(LOG_DRIVER));
        // A command given drops the image's cmd.
        assert_eq!(body.entrypoint, Some(vec!["sh".to_string()]));
        assert_eq!(body.cmd, Some(vec![]));
    }
}
