//! A CRI client that times what kubelet asks of a runtime to start a pod: `RunPodSandbox`,
//! then `CreateContainer` and `StartContainer` of one container, against any CRI socket
//! (berthd's or containerd's), for `bench/cri.sh`.
//!
//! `cri_bench SOCKET IMAGE ROUNDS PARALLEL`: prints the median of ROUNDS single pods, then the
//! wall time of PARALLEL pods started at once, in milliseconds; everything made is removed.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use hyper_util::rt::TokioIo;
use k8s_cri::v1 as cri;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use tonic::transport::{Channel, Endpoint, Uri};

type Rt = RuntimeServiceClient<Channel>;
type Error = Box<dyn std::error::Error + Send + Sync>;

async fn connect(socket: PathBuf) -> Result<Rt, Error> {
    let channel = Endpoint::try_from("http://[::]:50051")?
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let socket = socket.clone();
            async move {
                Ok::<_, std::io::Error>(TokioIo::new(
                    tokio::net::UnixStream::connect(socket).await?,
                ))
            }
        }))
        .await?;
    Ok(RuntimeServiceClient::new(channel))
}

/// Starts pod `name` with one container of `image` running `sleep`; its sandbox id.
async fn start_pod(rt: Rt, name: String, image: String) -> Result<String, Error> {
    Ok(start_pod_timed(rt, name, image).await?.0)
}

/// [`start_pod`], with the time of each of the three calls.
async fn start_pod_timed(
    mut rt: Rt,
    name: String,
    image: String,
) -> Result<(String, [Duration; 3]), Error> {
    let t0 = Instant::now();
    let config = cri::PodSandboxConfig {
        metadata: Some(cri::PodSandboxMetadata {
            name: name.clone(),
            uid: format!("bench-{name}"),
            namespace: "bench".into(),
            attempt: 0,
        }),
        hostname: name.clone(),
        linux: Some(cri::LinuxPodSandboxConfig::default()),
        ..Default::default()
    };
    let pod = rt
        .run_pod_sandbox(cri::RunPodSandboxRequest {
            config: Some(config.clone()),
            runtime_handler: String::new(),
        })
        .await?
        .into_inner()
        .pod_sandbox_id;
    let t1 = Instant::now();
    let container = cri::ContainerConfig {
        metadata: Some(cri::ContainerMetadata {
            name: "app".into(),
            attempt: 0,
        }),
        image: Some(cri::ImageSpec {
            image,
            ..Default::default()
        }),
        command: vec!["sleep".into(), "1000".into()],
        linux: Some(cri::LinuxContainerConfig::default()),
        ..Default::default()
    };
    let id = rt
        .create_container(cri::CreateContainerRequest {
            pod_sandbox_id: pod.clone(),
            config: Some(container),
            sandbox_config: Some(config),
        })
        .await?
        .into_inner()
        .container_id;
    let t2 = Instant::now();
    rt.start_container(cri::StartContainerRequest { container_id: id })
        .await?;
    Ok((pod, [t1 - t0, t2 - t1, t2.elapsed()]))
}

async fn remove_pod(rt: &mut Rt, pod: String) -> Result<(), Error> {
    rt.stop_pod_sandbox(cri::StopPodSandboxRequest {
        pod_sandbox_id: pod.clone(),
    })
    .await?;
    rt.remove_pod_sandbox(cri::RemovePodSandboxRequest {
        pod_sandbox_id: pod,
    })
    .await?;
    Ok(())
}

fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1000.0)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 4)]
async fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [socket, image, rounds, parallel] = args.as_slice() else {
        return Err("usage: cri_bench SOCKET IMAGE ROUNDS PARALLEL".into());
    };
    let rounds: usize = rounds.parse()?;
    let parallel: usize = parallel.parse()?;
    let mut rt = connect(PathBuf::from(socket)).await?;
    // One pod first, not timed: images, networks and caches warm.
    let warm = start_pod(rt.clone(), "warm".into(), image.clone()).await?;
    remove_pod(&mut rt, warm).await?;
    let mut times = Vec::new();
    let mut phases: [Vec<Duration>; 3] = Default::default();
    for i in 0..rounds {
        let t0 = Instant::now();
        let (pod, each) = start_pod_timed(rt.clone(), format!("one-{i}"), image.clone()).await?;
        times.push(t0.elapsed());
        for (all, one) in phases.iter_mut().zip(each) {
            all.push(one);
        }
        remove_pod(&mut rt, pod).await?;
    }
    let median = |v: &mut Vec<Duration>| {
        v.sort();
        v.get(v.len() / 2).copied().unwrap_or_default()
    };
    let median_all = median(&mut times);
    let [run, create, start] = phases.map(|mut p| median(&mut p));
    let t0 = Instant::now();
    let started: Vec<_> = (0..parallel)
        .map(|i| tokio::spawn(start_pod(rt.clone(), format!("par-{i}"), image.clone())))
        .collect();
    let mut pods = Vec::new();
    for s in started {
        pods.push(s.await??);
    }
    let wall = t0.elapsed();
    for pod in pods {
        remove_pod(&mut rt, pod).await?;
    }
    println!("one_pod_ms {}", ms(median_all));
    println!(
        "phases_ms run_pod_sandbox {} create_container {} start_container {}",
        ms(run),
        ms(create),
        ms(start)
    );
    println!("parallel_{parallel}_ms {}", ms(wall));
    Ok(())
}
