//! The CRI's figures and events through its socket: `ContainerStats`, `ListContainerStats`,
//! `PodSandboxStats` (the pod's CPU, memory, network and processes) from the kernel's cgroup
//! counters, and the `GetContainerEvents` stream of kubelet's evented PLEG following a pod
//! through its life.

#![allow(clippy::unwrap_used)]

mod common;
#[path = "common/cri.rs"]
mod cri_world;

use std::time::{Duration, Instant};

use common::skip;
use cri_world::*;
use k8s_cri::v1 as cri;

/// The next event of the stream (bounded wait).
async fn next_event(
    events: &mut tonic::Streaming<cri::ContainerEventResponse>,
) -> cri::ContainerEventResponse {
    tokio::time::timeout(Duration::from_secs(20), events.message())
        .await
        .expect("no event within 20 s")
        .unwrap()
        .expect("the event stream ended")
}

#[test]
fn figures_come_from_the_kernels_counters() {
    if skip() || plugins_missing() {
        return;
    }
    let p = Pods::start("s");
    runtime().block_on(async {
        let mut rt = client(&p.socket()).await;
        let config = pod_config("busy", &p.logs);
        let pod = run_pod(&mut rt, config.clone()).await;
        // A container that burns CPU and holds 20 MB of memory, and writes 1 MB to its layer.
        let burner = start_container(
            &mut rt,
            &pod,
            &config,
            container_config(
                "burner",
                "dd if=/dev/zero of=/big bs=1k count=1024 2>/dev/null; \
                 x=$(head -c 20000000 /dev/zero | tr '\\0' a); echo held; \
                 while true; do :; done",
            ),
        )
        .await;
        log_lines(&p.logs.join("busy/burner/0.log"), 1);
        let stats = |rt: &mut Rt| {
            let mut rt = rt.clone();
            let id = burner.clone();
            async move {
                rt.container_stats(cri::ContainerStatsRequest { container_id: id })
                    .await
                    .unwrap()
                    .into_inner()
                    .stats
                    .unwrap()
            }
        };
        let first = stats(&mut rt).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let s = stats(&mut rt).await;
        let attrs = s.attributes.as_ref().unwrap();
        assert_eq!(attrs.id, burner);
        assert_eq!(attrs.metadata.as_ref().unwrap().name, "burner");
        assert_eq!(attrs.labels["c"], "burner");
        let cpu = s.cpu.as_ref().unwrap();
        let total = cpu.usage_core_nano_seconds.as_ref().unwrap().value;
        let before = first.cpu.unwrap().usage_core_nano_seconds.unwrap().value;
        assert!(total > before, "{before} -> {total}");
        // A busy loop: well over a tenth of a core between the two readings.
        let cores = cpu.usage_nano_cores.as_ref().unwrap().value;
        assert!(cores > 100_000_000, "{cores}");
        let mem = s.memory.as_ref().unwrap();
        let working = mem.working_set_bytes.as_ref().unwrap().value;
        assert!(working > 20_000_000, "{working}");
        let layer = s.writable_layer.as_ref().unwrap();
        assert!(
            layer.used_bytes.as_ref().unwrap().value >= 1 << 20,
            "{layer:?}"
        );

        let listed = rt
            .list_container_stats(cri::ListContainerStatsRequest {
                filter: Some(cri::ContainerStatsFilter {
                    pod_sandbox_id: pod.clone(),
                    ..Default::default()
                }),
            })
            .await
            .unwrap()
            .into_inner()
            .stats;
        assert_eq!(listed.len(), 1);

        let ps = rt
            .pod_sandbox_stats(cri::PodSandboxStatsRequest {
                pod_sandbox_id: pod.clone(),
            })
            .await
            .unwrap()
            .into_inner()
            .stats
            .unwrap();
        let linux = ps.linux.unwrap();
        assert_eq!(linux.containers.len(), 1);
        // The pause process, the shell, and its loop's children come and go: at least two.
        let procs = linux.process.unwrap().process_count.unwrap().value;
        assert!(procs >= 2, "{procs}");
        let pod_mem = linux.memory.unwrap().working_set_bytes.unwrap().value;
        assert!(pod_mem >= working, "{pod_mem} < {working}");
        let net = linux.network.unwrap();
        let eth0 = net.default_interface.unwrap();
        assert_eq!(eth0.name, "eth0");
        assert!(eth0.rx_bytes.is_some());
        let all = rt
            .list_pod_sandbox_stats(cri::ListPodSandboxStatsRequest::default())
            .await
            .unwrap()
            .into_inner()
            .stats;
        assert_eq!(all.len(), 1);

        stop_and_remove_pod(&mut rt, &pod).await;
    });
}

#[test]
fn the_event_stream_follows_a_pod_through_its_life() {
    if skip() || plugins_missing() {
        return;
    }
    let p = Pods::start("e");
    runtime().block_on(async {
        let mut rt = client(&p.socket()).await;
        let mut events = rt
            .get_container_events(cri::GetEventsRequest {})
            .await
            .unwrap()
            .into_inner();
        use cri::ContainerEventType as E;
        let config = pod_config("ev", &p.logs);
        let t0 = Instant::now();
        let pod = run_pod(&mut rt, config.clone()).await;
        for want in [E::ContainerCreatedEvent, E::ContainerStartedEvent] {
            let e = next_event(&mut events).await;
            assert_eq!(
                (e.container_id.as_str(), e.container_event_type),
                (pod.as_str(), want as i32)
            );
            assert_eq!(e.pod_sandbox_status.as_ref().unwrap().id, pod);
        }
        let app = start_container(
            &mut rt,
            &pod,
            &config,
            container_config("app", "sleep 1000"),
        )
        .await;
        let e = next_event(&mut events).await;
        assert_eq!(
            (e.container_id.as_str(), e.container_event_type),
            (app.as_str(), E::ContainerCreatedEvent as i32)
        );
        let e = next_event(&mut events).await;
        assert_eq!(
            (e.container_id.as_str(), e.container_event_type),
            (app.as_str(), E::ContainerStartedEvent as i32)
        );
        // The pod's containers come with it, the started one running.
        let st = e.containers_statuses.iter().find(|s| s.id == app).unwrap();
        assert_eq!(st.state, cri::ContainerState::ContainerRunning as i32);
        let created_at = e.created_at;
        assert!(created_at > 0);

        rt.stop_container(cri::StopContainerRequest {
            container_id: app.clone(),
            timeout: 0,
        })
        .await
        .unwrap();
        let e = next_event(&mut events).await;
        assert_eq!(
            (e.container_id.as_str(), e.container_event_type),
            (app.as_str(), E::ContainerStoppedEvent as i32)
        );
        rt.remove_container(cri::RemoveContainerRequest {
            container_id: app.clone(),
        })
        .await
        .unwrap();
        let e = next_event(&mut events).await;
        assert_eq!(
            (e.container_id.as_str(), e.container_event_type),
            (app.as_str(), E::ContainerDeletedEvent as i32)
        );
        assert!(e.containers_statuses.iter().all(|s| s.id != app));
        // Docker's own containers are no CRI event.
        p.d.ok(&["run", "--rm", "--network", "none", "bb:local", "true"]);
        rt.stop_pod_sandbox(cri::StopPodSandboxRequest {
            pod_sandbox_id: pod.clone(),
        })
        .await
        .unwrap();
        let e = next_event(&mut events).await;
        assert_eq!(
            (e.container_id.as_str(), e.container_event_type),
            (pod.as_str(), E::ContainerStoppedEvent as i32)
        );
        assert!(t0.elapsed() < Duration::from_secs(60));
        rt.remove_pod_sandbox(cri::RemovePodSandboxRequest {
            pod_sandbox_id: pod,
        })
        .await
        .unwrap();
    });
}
