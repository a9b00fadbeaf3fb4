//! The Kubernetes CRI v1 socket (`--cri-socket`, default `<exec-root>/cri.sock`) through a
//! Rust CRI client (k8s-cri over tonic): `Version`, `Status`, `RuntimeConfig`, and the image
//! service over the engine's own store (an image pulled through CRI is one `docker images`
//! lists), pulls from a local registry with and without credentials.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use base64::Engine as _;
use common::{skip, Daemon};
use hyper_util::rt::TokioIo;
use k8s_cri::v1 as cri;
use k8s_cri::v1::image_service_client::ImageServiceClient;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use tonic::transport::{Channel, Endpoint, Uri};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// The test daemon's CRI socket: under its own exec root.
fn cri_socket(d: &Daemon) -> PathBuf {
    d.dir.join("run/cri.sock")
}

/// A channel to the CRI socket, once it exists (bounded wait).
async fn channel(path: &Path) -> Channel {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !path.exists() {
        assert!(
            Instant::now() < deadline,
            "no CRI socket at {}",
            path.display()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let path = path.to_path_buf();
    Endpoint::try_from("http://[::]:50051")
        .unwrap()
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let path = path.clone();
            async move {
                Ok::<_, std::io::Error>(TokioIo::new(tokio::net::UnixStream::connect(path).await?))
            }
        }))
        .await
        .unwrap()
}

fn spec(image: &str) -> Option<cri::ImageSpec> {
    Some(cri::ImageSpec {
        image: image.to_string(),
        ..Default::default()
    })
}

async fn status_of(images: &mut ImageServiceClient<Channel>, name: &str) -> Option<cri::Image> {
    images
        .image_status(cri::ImageStatusRequest {
            image: spec(name),
            verbose: false,
        })
        .await
        .unwrap()
        .into_inner()
        .image
}

#[test]
fn version_status_and_runtime_config() {
    if skip() {
        return;
    }
    // No network configuration: pods cannot get a network yet.
    let d = Daemon::start_with_args(&["--cni-conf-dir", "/nonexistent/net.d"], |_| {});
    runtime().block_on(async {
        let mut rt = RuntimeServiceClient::new(channel(&cri_socket(&d)).await);
        let v = rt
            .version(cri::VersionRequest::default())
            .await
            .unwrap()
            .into_inner();
        assert_eq!(v.runtime_name, "berth");
        assert_eq!(v.runtime_api_version, "v1");
        assert!(!v.runtime_version.is_empty(), "{v:?}");
        let s = rt
            .status(cri::StatusRequest::default())
            .await
            .unwrap()
            .into_inner();
        let conditions = s.status.unwrap().conditions;
        let ready = conditions
            .iter()
            .find(|c| c.r#type == "RuntimeReady")
            .unwrap();
        assert!(ready.status, "{conditions:?}");
        // Said in containerd's words (`cri_pods` has it ready with a configuration).
        let net = conditions
            .iter()
            .find(|c| c.r#type == "NetworkReady")
            .unwrap();
        assert!(
            !net.status
                && net.reason == "NetworkPluginNotReady"
                && net.message.contains("cni config load failed"),
            "{net:?}"
        );
        let c = rt
            .runtime_config(cri::RuntimeConfigRequest::default())
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            c.linux.unwrap().cgroup_driver,
            cri::CgroupDriver::Cgroupfs as i32
        );
        // What is not served is Unimplemented (as containerd 1.6), not a fake answer.
        let err = rt
            .checkpoint_container(cri::CheckpointContainerRequest::default())
            .await
            .unwrap_err();
        assert_eq!(err.code(), tonic::Code::Unimplemented, "{err:?}");
        // Without a network configuration a pod is refused, saying why.
        let config = cri::PodSandboxConfig {
            metadata: Some(cri::PodSandboxMetadata {
                name: "p".into(),
                uid: "u".into(),
                namespace: "n".into(),
                attempt: 0,
            }),
            ..Default::default()
        };
        let err = rt
            .run_pod_sandbox(cri::RunPodSandboxRequest {
                config: Some(config),
                runtime_handler: String::new(),
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), tonic::Code::FailedPrecondition, "{err:?}");
        assert!(err.message().contains("cni config load failed"), "{err:?}");
    });
    // A stale socket (berthd killed) is replaced; a stopped berthd removes its socket.
    let mut d = d;
    d.kill9();
    assert!(cri_socket(&d).exists());
    d.spawn();
    runtime().block_on(async {
        let mut rt = RuntimeServiceClient::new(channel(&cri_socket(&d)).await);
        rt.version(cri::VersionRequest::default()).await.unwrap();
    });
    d.stop();
    assert!(!cri_socket(&d).exists());
}

#[test]
fn cri_off_means_no_socket() {
    if skip() {
        return;
    }
    let d = Daemon::start_with_args(&["--cri=false"], |_| {});
    d.ok(&["version"]);
    assert!(!cri_socket(&d).exists());
}

#[test]
fn images_pulled_through_cri_are_the_engines() {
    if skip() {
        return;
    }
    let registry = berth_tests::registry::Registry::start().unwrap();
    let host = registry.host();
    let d = Daemon::start();
    d.busybox("bb:local");
    let name = format!("{host}/cri/bb:1");
    d.ok(&["tag", "bb:local", &name]);
    d.ok(&["push", &name]);
    d.ok(&["rmi", &name, "bb:local"]);
    runtime().block_on(async {
        let mut images = ImageServiceClient::new(channel(&cri_socket(&d)).await);
        // Missing: an empty status, not an error.
        assert_eq!(status_of(&mut images, &name).await, None);
        let pulled = images
            .pull_image(cri::PullImageRequest {
                image: spec(&name),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert!(pulled.image_ref.starts_with("sha256:"), "{pulled:?}");
        // Shared store: the Docker API lists it.
        let ids = d.ok(&[
            "images",
            "--no-trunc",
            "--format",
            "{{.ID}} {{.Repository}}:{{.Tag}}",
        ]);
        assert!(
            ids.contains(&format!("{} {name}", pulled.image_ref)),
            "{ids}"
        );
        let image = status_of(&mut images, &name).await.unwrap();
        assert_eq!(image.id, pulled.image_ref);
        assert_eq!(image.repo_tags, std::slice::from_ref(&name));
        assert!(image.size > 0, "{image:?}");
        // By id too, and verbose info.
        let verbose = images
            .image_status(cri::ImageStatusRequest {
                image: spec(&pulled.image_ref),
                verbose: true,
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(verbose.image.unwrap().id, pulled.image_ref);
        assert!(
            verbose.info["info"].contains("imageSpec"),
            "{:?}",
            verbose.info
        );
        // The list, whole and filtered.
        d.busybox("other:1");
        let all = images
            .list_images(cri::ListImagesRequest::default())
            .await
            .unwrap()
            .into_inner()
            .images;
        assert_eq!(all.len(), 2, "{all:?}");
        let one = images
            .list_images(cri::ListImagesRequest {
                filter: Some(cri::ImageFilter { image: spec(&name) }),
            })
            .await
            .unwrap()
            .into_inner()
            .images;
        assert_eq!(one.len(), 1, "{one:?}");
        assert_eq!(one[0].id, pulled.image_ref);
        let fs = images
            .image_fs_info(cri::ImageFsInfoRequest::default())
            .await
            .unwrap()
            .into_inner();
        let usage = &fs.image_filesystems[0];
        assert!(
            usage
                .fs_id
                .as_ref()
                .unwrap()
                .mountpoint
                .starts_with(d.data_root.to_str().unwrap()),
            "{usage:?}"
        );
        assert!(usage.used_bytes.as_ref().unwrap().value > 0, "{usage:?}");
        assert!(usage.inodes_used.as_ref().unwrap().value > 0, "{usage:?}");
        // Remove: gone from both views; removing again is fine.
        for _ in 0..2 {
            images
                .remove_image(cri::RemoveImageRequest { image: spec(&name) })
                .await
                .unwrap();
        }
        assert_eq!(status_of(&mut images, &name).await, None);
        let ids = d.ok(&["images", "--format", "{{.Repository}}"]);
        assert!(!ids.contains("cri/bb"), "{ids}");
    });
}

#[test]
fn pull_with_credentials() {
    if skip() {
        return;
    }
    let registry = berth_tests::registry::Registry::start_with_htpasswd("alice", "s3cret").unwrap();
    let host = registry.host();
    let d = Daemon::start();
    d.busybox("bb:local");
    let name = format!("{host}/team/bb:1");
    d.ok(&["tag", "bb:local", &name]);
    let out = d.docker_stdin(
        &["login", "-u", "alice", "--password-stdin", &host],
        Some(b"s3cret\n"),
    );
    assert!(out.status.success(), "{out:?}");
    d.ok(&["push", &name]);
    d.ok(&["rmi", &name, "bb:local"]);
    runtime().block_on(async {
        let mut images = ImageServiceClient::new(channel(&cri_socket(&d)).await);
        let pull = |auth: Option<cri::AuthConfig>| cri::PullImageRequest {
            image: spec(&name),
            auth,
            ..Default::default()
        };
        // Anonymous, and with a wrong password: refused.
        images.pull_image(pull(None)).await.unwrap_err();
        let wrong = cri::AuthConfig {
            username: "alice".into(),
            password: "nope".into(),
            ..Default::default()
        };
        images.pull_image(pull(Some(wrong))).await.unwrap_err();
        assert_eq!(status_of(&mut images, &name).await, None);
        // Username and password.
        let right = cri::AuthConfig {
            username: "alice".into(),
            password: "s3cret".into(),
            server_address: host.clone(),
            ..Default::default()
        };
        images.pull_image(pull(Some(right))).await.unwrap();
        assert!(status_of(&mut images, &name).await.is_some());
        images
            .remove_image(cri::RemoveImageRequest { image: spec(&name) })
            .await
            .unwrap();
        // `auth`: base64 of user:password, as kubelet passes a docker config's.
        let auth = cri::AuthConfig {
            auth: base64::engine::general_purpose::STANDARD.encode("alice:s3cret"),
            ..Default::default()
        };
        images.pull_image(pull(Some(auth))).await.unwrap();
        assert!(status_of(&mut images, &name).await.is_some());
    });
}
