//! The CRI tests' world: a daemon with a CNI conflist of its own, a CRI client over its
//! socket, and the calls kubelet makes, each unwrapped.

#![allow(dead_code, clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::common::Daemon;
use hyper_util::rt::TokioIo;
use k8s_cri::v1 as cri;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use tonic::transport::{Channel, Endpoint, Uri};

pub type Rt = RuntimeServiceClient<Channel>;

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

pub fn plugins_missing() -> bool {
    let missing = !["bridge", "host-local", "portmap", "loopback"]
        .iter()
        .all(|p| Path::new("/usr/lib/cni").join(p).exists());
    if missing {
        eprintln!("skipped: needs containernetworking-plugins in /usr/lib/cni");
        assert!(
            std::env::var("CI").is_err(),
            "containernetworking-plugins is missing under CI"
        );
    }
    missing
}

/// A daemon whose `--cni-conf-dir` holds one conflist: bridge `bcri<tag><pid>`, subnet
/// `10.215.<third>.0/24`, host-local's data under the daemon's directory, portmap.
pub struct Pods {
    pub d: Daemon,
    pub net: String,
    pub host_local: PathBuf,
    pub logs: PathBuf,
}

impl Pods {
    pub fn start(tag: &str) -> Pods {
        let pid = std::process::id();
        let third = 10 + (pid + tag.len() as u32 * 37) % 200;
        let net = format!("10.215.{third}");
        let bridge = format!("bcri{tag}{}", pid % 100_000);
        let conf_dir = std::env::temp_dir().join(format!("berth-cri-net-{tag}-{pid}"));
        let host_local = conf_dir.join("host-local");
        std::fs::create_dir_all(&conf_dir).unwrap();
        let conflist = format!(
            r#"{{"cniVersion": "1.0.0", "name": "pods-{pid}", "plugins": [
                {{"type": "bridge", "bridge": "{bridge}", "isGateway": true, "ipMasq": false,
                  "ipam": {{"type": "host-local", "dataDir": "{data}", "subnet": "{net}.0/24",
                            "routes": [{{"dst": "0.0.0.0/0"}}]}}}},
                {{"type": "portmap", "capabilities": {{"portMappings": true}}, "snat": true}}]}}"#,
            data = host_local.display(),
        );
        std::fs::write(conf_dir.join("10-pods.conflist"), conflist).unwrap();
        let dir = conf_dir.display().to_string();
        let d = Daemon::start_with_args(&["--cni-conf-dir", &dir], |_| {});
        d.busybox("bb:local");
        let logs = d.dir.join("pod-logs");
        Pods {
            d,
            net,
            host_local,
            logs,
        }
    }

    pub fn socket(&self) -> PathBuf {
        self.d.dir.join("run/cri.sock")
    }

    /// The addresses host-local holds.
    pub fn reserved(&self) -> Vec<String> {
        let dir = self.host_local.join(format!("pods-{}", std::process::id()));
        std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|name| name.starts_with(&self.net))
            .collect()
    }
}

impl Drop for Pods {
    fn drop(&mut self) {
        if let Some(dir) = self.host_local.parent() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

pub async fn client(path: &Path) -> Rt {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !path.exists() {
        assert!(Instant::now() < deadline, "no CRI socket");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let path = path.to_path_buf();
    let channel = Endpoint::try_from("http://[::]:50051")
        .unwrap()
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let path = path.clone();
            async move {
                Ok::<_, std::io::Error>(TokioIo::new(tokio::net::UnixStream::connect(path).await?))
            }
        }))
        .await
        .unwrap();
    RuntimeServiceClient::new(channel)
}

pub fn pod_config(name: &str, logs: &Path) -> cri::PodSandboxConfig {
    cri::PodSandboxConfig {
        metadata: Some(cri::PodSandboxMetadata {
            name: name.to_string(),
            uid: format!("uid-{name}-{}", std::process::id()),
            namespace: "default".to_string(),
            attempt: 0,
        }),
        hostname: format!("{name}-host"),
        log_directory: logs.join(name).display().to_string(),
        labels: [("app".to_string(), name.to_string())].into(),
        annotations: [("note".to_string(), "berth".to_string())].into(),
        ..Default::default()
    }
}

pub fn container_config(name: &str, script: &str) -> cri::ContainerConfig {
    cri::ContainerConfig {
        metadata: Some(cri::ContainerMetadata {
            name: name.to_string(),
            attempt: 0,
        }),
        image: Some(cri::ImageSpec {
            image: "bb:local".to_string(),
            ..Default::default()
        }),
        command: vec!["sh".to_string(), "-c".to_string(), script.to_string()],
        log_path: format!("{name}/0.log"),
        labels: [("c".to_string(), name.to_string())].into(),
        ..Default::default()
    }
}

pub async fn run_pod(rt: &mut Rt, config: cri::PodSandboxConfig) -> String {
    rt.run_pod_sandbox(cri::RunPodSandboxRequest {
        config: Some(config),
        runtime_handler: String::new(),
    })
    .await
    .unwrap()
    .into_inner()
    .pod_sandbox_id
}

/// StopPodSandbox, then RemovePodSandbox.
pub async fn stop_and_remove_pod(rt: &mut Rt, pod: &str) {
    rt.stop_pod_sandbox(cri::StopPodSandboxRequest {
        pod_sandbox_id: pod.to_string(),
    })
    .await
    .unwrap();
    rt.remove_pod_sandbox(cri::RemovePodSandboxRequest {
        pod_sandbox_id: pod.to_string(),
    })
    .await
    .unwrap();
}

pub async fn start_container(
    rt: &mut Rt,
    pod: &str,
    pod_config: &cri::PodSandboxConfig,
    config: cri::ContainerConfig,
) -> String {
    let id = rt
        .create_container(cri::CreateContainerRequest {
            pod_sandbox_id: pod.to_string(),
            config: Some(config),
            sandbox_config: Some(pod_config.clone()),
        })
        .await
        .unwrap()
        .into_inner()
        .container_id;
    rt.start_container(cri::StartContainerRequest {
        container_id: id.clone(),
    })
    .await
    .unwrap();
    id
}

pub async fn exec(rt: &mut Rt, id: &str, cmd: &[&str]) -> cri::ExecSyncResponse {
    rt.exec_sync(cri::ExecSyncRequest {
        container_id: id.to_string(),
        cmd: cmd.iter().map(|s| s.to_string()).collect(),
        timeout: 20,
    })
    .await
    .unwrap()
    .into_inner()
}

pub async fn container_status(rt: &mut Rt, id: &str) -> cri::ContainerStatus {
    rt.container_status(cri::ContainerStatusRequest {
        container_id: id.to_string(),
        verbose: false,
    })
    .await
    .unwrap()
    .into_inner()
    .status
    .unwrap()
}

/// Waits (bounded) until the container has exited; its status.
pub async fn exited(rt: &mut Rt, id: &str) -> cri::ContainerStatus {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let s = container_status(rt, id).await;
        if s.state == cri::ContainerState::ContainerExited as i32 {
            return s;
        }
        assert!(Instant::now() < deadline, "{id} did not exit: {s:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub async fn pod_status(rt: &mut Rt, id: &str) -> cri::PodSandboxStatus {
    rt.pod_sandbox_status(cri::PodSandboxStatusRequest {
        pod_sandbox_id: id.to_string(),
        verbose: true,
    })
    .await
    .unwrap()
    .into_inner()
    .status
    .unwrap()
}

/// The lines of a CRI log once `want` of them are there (bounded wait).
pub fn log_lines(path: &Path, want: usize) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let lines: Vec<String> = std::fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect();
        if lines.len() >= want {
            return lines;
        }
        assert!(
            Instant::now() < deadline,
            "{} has {lines:?}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
