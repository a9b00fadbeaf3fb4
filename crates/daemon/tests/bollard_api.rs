#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions unwrap too

//! The API at the type level, through `bollard` (a Rust Docker client no one here wrote): what
//! berthd sends must decode into Docker's own types.

mod common;

use bollard::errors::Error;
use bollard::models::{ContainerCreateBody, HostConfig};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, ListImagesOptions, LogsOptionsBuilder, RemoveContainerOptions,
    WaitContainerOptions,
};
use bollard::Docker;
use common::{skip, Daemon};
use futures_util::StreamExt;

#[tokio::test]
async fn a_container_through_bollard() {
    if skip() {
        return;
    }
    let d = Daemon::start();
    d.busybox("bb:local");
    let docker =
        Docker::connect_with_unix(d.socket.to_str().unwrap(), 60, bollard::API_DEFAULT_VERSION)
            .unwrap();
    let version = docker.version().await.unwrap();
    assert_eq!(version.api_version.as_deref(), Some(berth_api::API_VERSION));
    let images = docker.list_images(None::<ListImagesOptions>).await.unwrap();
    assert_eq!(images.len(), 1);
    assert_eq!(images[0].repo_tags, vec!["bb:local".to_string()]);

    let created = docker
        .create_container(
            Some(
                CreateContainerOptionsBuilder::default()
                    .name("typed")
                    .build(),
            ),
            ContainerCreateBody {
                image: Some("bb:local".into()),
                cmd: Some(vec!["sh".into(), "-c".into(), "echo typed; exit 2".into()]),
                host_config: Some(HostConfig {
                    memory: Some(64 << 20),
                    ..Default::default()
                }),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let inspect = docker.inspect_container("typed", None).await.unwrap();
    assert_eq!(inspect.id.as_deref(), Some(created.id.as_str()));
    assert_eq!(inspect.name.as_deref(), Some("/typed"));
    assert_eq!(inspect.host_config.unwrap().memory, Some(64 << 20));
    assert_eq!(
        inspect
            .state
            .unwrap()
            .status
            .map(|s| s.to_string())
            .as_deref(),
        Some("created")
    );

    docker.start_container("typed", None).await.unwrap();
    let waited = docker
        .wait_container("typed", None::<WaitContainerOptions>)
        .next()
        .await
        .unwrap();
    // bollard reports a non-zero exit as an error carrying the code.
    match waited {
        Err(Error::DockerContainerWaitError { code, .. }) => assert_eq!(code, 2),
        other => panic!("expected exit code 2, got {other:?}"),
    }
    let logs: Vec<String> = docker
        .logs(
            "typed",
            Some(
                LogsOptionsBuilder::default()
                    .stdout(true)
                    .stderr(true)
                    .build(),
            ),
        )
        .map(|l| l.unwrap().to_string())
        .collect()
        .await;
    assert_eq!(logs, vec!["typed\n".to_string()]);

    docker
        .remove_container("typed", None::<RemoveContainerOptions>)
        .await
        .unwrap();
    match docker.inspect_container("typed", None).await {
        Err(Error::DockerResponseServerError {
            status_code,
            message,
        }) => {
            assert_eq!(status_code, 404);
            assert_eq!(message, "No such container: typed");
        }
        other => panic!("expected a 404, got {other:?}"),
    }
}
