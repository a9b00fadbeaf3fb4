//! Pod sandboxes. A sandbox is an engine container with no image whose process is
//! berth-init's pause mode (`/dev/init --pause`, bound in from the host): it holds the pod's
//! network namespace (attached to the CNI network, or the host's), its IPC namespace
//! (shareable, with its `/dev/shm`) and UTS namespace (the pod's hostname), and its PID
//! namespace when the pod shares one. Its cgroup is under the pod cgroup kubelet names
//! (`cgroup_parent`, cgroupfs). The pod's containers join these namespaces
//! (`container:<sandbox>` modes) and cgroup parent (see `containers`).

use std::collections::HashMap;

use berth_api::models::{ContainerCreateBody, HostConfig, HostConfigLogConfig, PortBinding};
use berth_engine::container::{Container, Status as EngineStatus};
use berth_engine::error::EngineError;
use k8s_cri::v1 as cri;
use k8s_cri::v1::NamespaceMode;
use tonic::Status;

use crate::record::{from_map, nanos, selected, to_map, Record, SandboxRecord};
use crate::{security, status, Cri};

/// The pause command: berth-init bound at `/dev/init`.
const PAUSE: [&str; 2] = ["/dev/init", "--pause"];

/// The `oom_score_adj` kubelet gives sandboxes.
const SANDBOX_OOM_SCORE_ADJ: i64 = -998;

/// The engine name of a sandbox, as dockershim named them (unique per pod and attempt).
fn sandbox_name(m: &cri::PodSandboxMetadata) -> String {
    format!("k8s_POD_{}_{}_{}_{}", m.name, m.namespace, m.uid, m.attempt)
}

/// The lowest `oom_score_adj` berthd may give: its own (the kernel refuses a lower one
/// without CAP_SYS_RESOURCE, as containerd's `restrict_oom_score_adj` knows).
pub(crate) fn clamp_oom_score_adj(wanted: i64) -> i64 {
    let own = std::fs::read_to_string("/proc/self/oom_score_adj")
        .ok()
        .and_then(|s| s.trim().parse::<i64>().ok())
        .unwrap_or(0);
    wanted.max(own)
}

impl Cri {
    /// The sandbox `id` names (an id or a unique prefix), with its record.
    pub(crate) fn sandbox(&self, id: &str) -> Result<(Container, SandboxRecord), Status> {
        self.object("pod sandbox", id, |r| match r {
            Record::Sandbox(r) => Some(r),
            Record::Container(_) => None,
        })
    }

    /// Every sandbox.
    pub(crate) fn sandboxes(&self) -> Vec<(Container, SandboxRecord)> {
        self.objects(|r| match r {
            Record::Sandbox(r) => Some(r),
            Record::Container(_) => None,
        })
    }

    pub(crate) async fn run_pod_sandbox(
        &self,
        req: cri::RunPodSandboxRequest,
    ) -> Result<String, Status> {
        let config = req
            .config
            .ok_or_else(|| Status::invalid_argument("no pod sandbox config given"))?;
        let meta = config
            .metadata
            .clone()
            .ok_or_else(|| Status::invalid_argument("no pod sandbox metadata given"))?;
        if meta.name.is_empty() || meta.namespace.is_empty() || meta.uid.is_empty() {
            return Err(Status::invalid_argument(
                "pod sandbox metadata needs a name, a namespace and a uid",
            ));
        }
        if !req.runtime_handler.is_empty() && req.runtime_handler != crate::RUNTIME_NAME {
            return Err(Status::not_found(format!(
                "no runtime for {:?} is configured",
                req.runtime_handler
            )));
        }
        let linux = config.linux.clone().unwrap_or_default();
        if linux.cgroup_parent.ends_with(".slice") {
            // kubelet's systemd driver names slices; berth drives cgroupfs, as `RuntimeConfig`
            // says.
            return Err(Status::invalid_argument(format!(
                "cgroup parent {:?} is a systemd slice: berth uses the cgroupfs driver \
                 (run kubelet with --cgroup-driver=cgroupfs)",
                linux.cgroup_parent
            )));
        }
        let sc = linux.security_context.clone().unwrap_or_default();
        let ns = sc.namespace_options.clone().unwrap_or_default();
        let host_network = ns.network == NamespaceMode::Node as i32;
        let network = if host_network {
            None
        } else {
            Some(self.pod_network().await?)
        };
        let mut record = SandboxRecord {
            name: meta.name.clone(),
            uid: meta.uid.clone(),
            namespace: meta.namespace.clone(),
            attempt: meta.attempt,
            labels: from_map(&config.labels),
            annotations: from_map(&config.annotations),
            log_directory: config.log_directory.clone(),
            runtime_handler: req.runtime_handler.clone(),
            network_mode: ns.network,
            pid_mode: ns.pid,
            ipc_mode: ns.ipc,
            cgroup_parent: linux.cgroup_parent.clone(),
            network: network.clone(),
        };
        if record.pid_mode == NamespaceMode::Target as i32 {
            // A sandbox has no container to target: its own namespace.
            record.pid_mode = NamespaceMode::Container as i32;
        }
        let body = sandbox_body(&config, &record, network.as_deref())?;
        let name = sandbox_name(&meta);
        let engine = self.engine.clone();
        let id = tokio::task::spawn_blocking(move || engine.create_imageless(&name, body))
            .await
            .map_err(|e| Status::internal(e.to_string()))?
            .map_err(|e| match e {
                EngineError::Conflict(m) => Status::already_exists(m),
                other => status(other),
            })?;
        if let Err(e) = self.engine.start(&id).await {
            // Nothing of a sandbox that did not start stays (its CNI attachment included).
            if let Err(e) = self.engine.remove(&id, true).await {
                tracing::warn!(sandbox = %id, error = %e, "removing a sandbox that failed");
            }
            return Err(status(e));
        }
        Ok(id)
    }

    pub(crate) async fn stop_pod_sandbox(&self, id: &str) -> Result<(), Status> {
        let (sandbox, _) = match self.sandbox(id) {
            Ok(s) => s,
            Err(e) if e.code() == tonic::Code::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        for (c, _) in self.pod_containers(&sandbox.id) {
            if c.is_running() {
                self.engine
                    .stop(&c.id, Some(0), None)
                    .await
                    .or_else(ignore_gone)
                    .map_err(status)?;
            }
        }
        // The pause process ends at SIGTERM; its network goes with it (CNI DEL).
        if sandbox.is_running() {
            self.engine
                .stop(&sandbox.id, Some(10), None)
                .await
                .or_else(ignore_gone)
                .map_err(status)?;
        }
        Ok(())
    }

    pub(crate) async fn remove_pod_sandbox(&self, id: &str) -> Result<(), Status> {
        let (sandbox, _) = match self.sandbox(id) {
            Ok(s) => s,
            Err(e) if e.code() == tonic::Code::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        for (c, _) in self.pod_containers(&sandbox.id) {
            self.engine
                .remove(&c.id, true)
                .await
                .or_else(ignore_gone)
                .map_err(status)?;
        }
        self.engine
            .remove(&sandbox.id, true)
            .await
            .or_else(ignore_gone)
            .map_err(status)
    }

    pub(crate) fn pod_sandbox_status(
        &self,
        id: &str,
        verbose: bool,
    ) -> Result<cri::PodSandboxStatusResponse, Status> {
        let (c, r) = self.sandbox(id)?;
        let ip = if r.network.is_some() {
            c.networks
                .endpoints
                .first()
                .and_then(|e| e.live.as_ref())
                .map(|l| l.endpoint.ip.to_string())
                .unwrap_or_default()
        } else {
            String::new()
        };
        let status = cri::PodSandboxStatus {
            id: c.id.clone(),
            metadata: Some(metadata(&r)),
            state: state(&c) as i32,
            created_at: nanos(&c.created),
            network: Some(cri::PodSandboxNetworkStatus {
                ip,
                additional_ips: Vec::new(),
            }),
            linux: Some(cri::LinuxPodSandboxStatus {
                namespaces: Some(cri::Namespace {
                    options: Some(cri::NamespaceOption {
                        network: r.network_mode,
                        pid: r.pid_mode,
                        ipc: r.ipc_mode,
                        ..Default::default()
                    }),
                }),
            }),
            labels: to_map(&r.labels),
            annotations: to_map(&r.annotations),
            runtime_handler: r.runtime_handler.clone(),
        };
        let mut info = HashMap::new();
        if verbose {
            let details = serde_json::json!({
                "pid": c.state.pid,
                "processStatus": c.state.status.as_str(),
                "netNamespaceClosed": !c.is_running(),
                "image": berth_engine::NO_IMAGE,
                "pause": PAUSE,
                "cgroupParent": r.cgroup_parent,
                "network": r.network,
                "runtimeType": crate::RUNTIME_NAME,
                "record": r,
            });
            info.insert("info".to_string(), details.to_string());
        }
        Ok(cri::PodSandboxStatusResponse {
            status: Some(status),
            info,
            ..Default::default()
        })
    }

    pub(crate) fn list_pod_sandbox(
        &self,
        filter: Option<cri::PodSandboxFilter>,
    ) -> Vec<cri::PodSandbox> {
        let filter = filter.unwrap_or_default();
        let mut out: Vec<cri::PodSandbox> = self
            .sandboxes()
            .into_iter()
            .filter(|(c, r)| {
                (filter.id.is_empty() || c.id.starts_with(&filter.id))
                    && filter
                        .state
                        .as_ref()
                        .is_none_or(|s| s.state == state(c) as i32)
                    && selected(&r.labels, &filter.label_selector)
            })
            .map(|(c, r)| cri::PodSandbox {
                id: c.id.clone(),
                metadata: Some(metadata(&r)),
                state: state(&c) as i32,
                created_at: nanos(&c.created),
                labels: to_map(&r.labels),
                annotations: to_map(&r.annotations),
                runtime_handler: r.runtime_handler.clone(),
            })
            .collect();
        out.sort_by_key(|x| std::cmp::Reverse(x.created_at));
        out
    }
}

/// A container that went away meanwhile is no error for stop and remove.
pub(crate) fn ignore_gone(e: EngineError) -> Result<(), EngineError> {
    match e {
        EngineError::NotFound(_) => Ok(()),
        e => Err(e),
    }
}

fn metadata(r: &SandboxRecord) -> cri::PodSandboxMetadata {
    cri::PodSandboxMetadata {
        name: r.name.clone(),
        uid: r.uid.clone(),
        namespace: r.namespace.clone(),
        attempt: r.attempt,
    }
}

/// A sandbox is ready while its pause process runs.
fn state(c: &Container) -> cri::PodSandboxState {
    match c.state.status {
        EngineStatus::Running | EngineStatus::Paused => cri::PodSandboxState::SandboxReady,
        _ => cri::PodSandboxState::SandboxNotready,
    }
}

/// The engine's create body of a sandbox.
fn sandbox_body(
    config: &cri::PodSandboxConfig,
    record: &SandboxRecord,
    network: Option<&str>,
) -> Result<ContainerCreateBody, Status> {
    let linux = config.linux.clone().unwrap_or_default();
    let sc = linux.security_context.clone().unwrap_or_default();
    let node = |mode: i32| mode == NamespaceMode::Node as i32;
    let dns = config.dns_config.clone().unwrap_or_default();
    let non_empty = |v: Vec<String>| (!v.is_empty()).then_some(v);
    let mut exposed = Vec::new();
    let mut bindings: HashMap<String, Option<Vec<PortBinding>>> = HashMap::new();
    if network.is_some() {
        for p in &config.port_mappings {
            if p.host_port <= 0 || p.container_port <= 0 {
                continue;
            }
            let proto = match cri::Protocol::try_from(p.protocol) {
                Ok(cri::Protocol::Udp) => "udp",
                Ok(cri::Protocol::Sctp) => "sctp",
                _ => "tcp",
            };
            let key = format!("{}/{proto}", p.container_port);
            exposed.push(key.clone());
            bindings
                .entry(key)
                .or_insert_with(|| Some(Vec::new()))
                .get_or_insert_with(Vec::new)
                .push(PortBinding {
                    host_ip: Some(p.host_ip.clone()).filter(|h| !h.is_empty()),
                    host_port: Some(p.host_port.to_string()),
                });
        }
    }
    let mut security_opt = vec![security::seccomp_opt(sc.seccomp.as_ref())?];
    security_opt.retain(|s| !s.is_empty());
    let user = security::user(sc.run_as_user.as_ref(), sc.run_as_group.as_ref(), "");
    let host_config = HostConfig {
        init: Some(true),
        network_mode: Some(network.map_or("host".to_string(), str::to_string)),
        ipc_mode: Some(
            if node(record.ipc_mode) {
                "host"
            } else {
                "shareable"
            }
            .to_string(),
        ),
        pid_mode: node(record.pid_mode).then(|| "host".to_string()),
        uts_mode: network.is_none().then(|| "host".to_string()),
        cgroup_parent: Some(linux.cgroup_parent.clone()).filter(|p| !p.is_empty()),
        dns: non_empty(dns.servers),
        dns_search: non_empty(dns.searches),
        dns_options: non_empty(dns.options),
        sysctls: Some(linux.sysctls.clone()).filter(|s| !s.is_empty()),
        oom_score_adj: Some(clamp_oom_score_adj(SANDBOX_OOM_SCORE_ADJ)),
        port_bindings: Some(bindings).filter(|b| !b.is_empty()),
        privileged: Some(sc.privileged),
        readonly_rootfs: Some(sc.readonly_rootfs),
        security_opt: non_empty(security_opt),
        log_config: Some(HostConfigLogConfig {
            typ: Some("none".to_string()),
            config: None,
        }),
        ..Default::default()
    };
    Ok(ContainerCreateBody {
        hostname: Some(config.hostname.clone()).filter(|h| !h.is_empty() && network.is_some()),
        user,
        entrypoint: Some(PAUSE.iter().map(|s| s.to_string()).collect()),
        cmd: Some(Vec::new()),
        labels: Some(Record::Sandbox(record.clone()).label()),
        exposed_ports: Some(exposed).filter(|e| !e.is_empty()),
        host_config: Some(host_config),
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oom_score_adj_is_never_below_berthds() {
        let own: i64 = std::fs::read_to_string("/proc/self/oom_score_adj")
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        assert_eq!(clamp_oom_score_adj(-1000), own.max(-1000));
        assert_eq!(clamp_oom_score_adj(1000), 1000);
    }

    #[test]
    fn a_sandbox_body_holds_the_pods_namespaces() {
        let config = cri::PodSandboxConfig {
            metadata: Some(cri::PodSandboxMetadata {
                name: "web".into(),
                uid: "u1".into(),
                namespace: "default".into(),
                attempt: 1,
            }),
            hostname: "web-0".into(),
            port_mappings: vec![cri::PortMapping {
                protocol: cri::Protocol::Tcp as i32,
                container_port: 80,
                host_port: 8080,
                host_ip: String::new(),
            }],
            ..Default::default()
        };
        let record = SandboxRecord::default();
        let body = sandbox_body(&config, &record, Some("cri-pods")).unwrap();
        let hc = body.host_config.unwrap();
        assert_eq!(hc.network_mode.as_deref(), Some("cri-pods"));
        assert_eq!(hc.ipc_mode.as_deref(), Some("shareable"));
        assert_eq!(hc.init, Some(true));
        assert_eq!(body.hostname.as_deref(), Some("web-0"));
        assert_eq!(body.exposed_ports, Some(vec!["80/tcp".to_string()]));
        let b = hc.port_bindings.unwrap();
        assert_eq!(
            b["80/tcp"].as_ref().unwrap()[0].host_port.as_deref(),
            Some("8080")
        );
        assert_eq!(
            sandbox_name(config.metadata.as_ref().unwrap()),
            "k8s_POD_web_default_u1_1"
        );
    }
}
