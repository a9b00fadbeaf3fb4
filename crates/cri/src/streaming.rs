//! The engine behind the CRI's streaming server (`berth-streaming`): `Exec` and `Attach`
//! through the container's monitor, as `docker exec` and `docker attach` go, and
//! `PortForward` to a port of the pod's loopback, connected from inside the pod's network
//! namespace (as containerd connects).

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;
use berth_api::models::ExecConfig;
use berth_engine::attach::{AttachOptions, Attached, MonitorStream};
use berth_engine::Engine;
use berth_streaming::{Backend, BackendError, PortStream, Streams, TerminalSize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

use crate::record::Record;

/// How long a forwarded connection may take to be made.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The engine, as the streaming server sees it.
#[derive(Debug, Clone)]
pub struct EngineBackend {
    pub engine: Engine,
}

fn fail(e: impl std::fmt::Display) -> BackendError {
    BackendError(e.to_string())
}

impl EngineBackend {
    /// The running CRI container `id`; its id and whether it has a terminal.
    fn running(&self, id: &str) -> Result<(String, bool), BackendError> {
        let c = self.engine.containers.get(id).map_err(fail)?;
        if !matches!(Record::of(&c), Some(Record::Container(_))) {
            return Err(BackendError(format!("container {id:?} not found")));
        }
        if !c.is_running() {
            return Err(BackendError(format!("container {id:?} is not running")));
        }
        Ok((c.id.clone(), c.tty()))
    }
}

/// Copies the container's output to the client (stdcopy frames apart without a terminal),
/// the client's input to the container (its end closes the container's stdin), and the
/// client's terminal sizes to `resize`, until the output ends.
async fn pump<F, Fut>(monitor: MonitorStream, tty: bool, streams: Streams, resize: F)
where
    F: Fn(TerminalSize) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let (mut from, mut to) = tokio::io::split(monitor);
    let Streams {
        stdin,
        mut stdout,
        mut stderr,
        resize: sizes,
    } = streams;
    let input = tokio::spawn(async move {
        if let Some(mut stdin) = stdin {
            let _ = tokio::io::copy(&mut stdin, &mut to).await;
        }
        let _ = to.shutdown().await;
    });
    let resizing = sizes.map(|mut sizes: mpsc::Receiver<TerminalSize>| {
        tokio::spawn(async move {
            while let Some(size) = sizes.recv().await {
                resize(size).await;
            }
        })
    });
    if tty {
        match stdout.as_mut() {
            Some(out) => {
                let _ = tokio::io::copy(&mut from, out).await;
            }
            None => {
                let _ = tokio::io::copy(&mut from, &mut tokio::io::sink()).await;
            }
        }
    } else {
        let mut buf = vec![0u8; 32 << 10];
        'frames: loop {
            let mut head = [0u8; 8];
            if from.read_exact(&mut head).await.is_err() {
                break;
            }
            let mut left = u32::from_be_bytes([head[4], head[5], head[6], head[7]]) as usize;
            let mut sink = match head[0] {
                2 => stderr.as_mut(),
                _ => stdout.as_mut(),
            };
            while left > 0 {
                let want = left.min(buf.len());
                let Some(chunk) = buf.get_mut(..want) else {
                    break 'frames;
                };
                let n = match from.read(chunk).await {
                    Ok(0) | Err(_) => break 'frames,
                    Ok(n) => n,
                };
                left -= n;
                if let (Some(out), Some(data)) = (sink.as_mut(), buf.get(..n)) {
                    if out.write_all(data).await.is_err() {
                        // The client stopped reading this stream: the rest is dropped.
                        sink = None;
                    }
                }
            }
        }
    }
    for out in [stdout.as_mut(), stderr.as_mut()].into_iter().flatten() {
        let _ = out.flush().await;
        let _ = out.shutdown().await;
    }
    input.abort();
    if let Some(r) = resizing {
        r.abort();
    }
}

#[async_trait]
impl Backend for EngineBackend {
    async fn exec(
        &self,
        container_id: &str,
        cmd: &[String],
        tty: bool,
        streams: Streams,
    ) -> Result<i32, BackendError> {
        let (id, _) = self.running(container_id)?;
        let config = ExecConfig {
            cmd: Some(cmd.to_vec()),
            tty: Some(tty),
            attach_stdin: Some(streams.stdin.is_some()),
            attach_stdout: Some(streams.stdout.is_some()),
            attach_stderr: Some(streams.stderr.is_some()),
            ..Default::default()
        };
        let exec = self.engine.exec_create(&id, config).map_err(fail)?;
        let prepared = self.engine.exec_prepare(&exec).map_err(fail)?;
        let stream = self.engine.exec_launch(prepared).await.map_err(fail)?;
        let (engine, exec_id) = (self.engine.clone(), exec.clone());
        pump(stream, tty, streams, move |size| {
            let (engine, exec_id) = (engine.clone(), exec_id.clone());
            async move {
                let (h, w) = (u32::from(size.height), u32::from(size.width));
                if let Err(e) = engine.exec_resize(&exec_id, h, w).await {
                    tracing::debug!(exec = %exec_id, error = %e, "resize");
                }
            }
        })
        .await;
        crate::exec::exit_code(&self.engine, &exec)
            .await
            .map_err(|s| BackendError(s.message().to_string()))
    }

    async fn attach(
        &self,
        container_id: &str,
        _tty: bool,
        streams: Streams,
    ) -> Result<(), BackendError> {
        let (id, tty) = self.running(container_id)?;
        let opts = AttachOptions {
            stdin: streams.stdin.is_some(),
            stdout: streams.stdout.is_some(),
            stderr: streams.stderr.is_some(),
        };
        let stream = match self.engine.attach(&id, opts).await.map_err(fail)? {
            (_, Attached::Now(stream)) => stream,
            (_, Attached::AtStart(_)) => {
                return Err(BackendError(format!("container {id:?} is not running")))
            }
        };
        let engine = self.engine.clone();
        pump(stream, tty, streams, move |size| {
            let (engine, id) = (engine.clone(), id.clone());
            async move {
                let (h, w) = (u32::from(size.height), u32::from(size.width));
                if let Err(e) = engine.resize(&id, h, w).await {
                    tracing::debug!(container = %id, error = %e, "resize");
                }
            }
        })
        .await;
        Ok(())
    }

    async fn port_forward(
        &self,
        pod_sandbox_id: &str,
        port: u16,
        mut stream: Box<dyn PortStream>,
    ) -> Result<(), BackendError> {
        let c = self.engine.containers.get(pod_sandbox_id).map_err(fail)?;
        if !matches!(Record::of(&c), Some(Record::Sandbox(_))) {
            return Err(BackendError(format!(
                "pod sandbox {pod_sandbox_id:?} not found"
            )));
        }
        if !c.is_running() || c.state.pid <= 0 {
            return Err(BackendError(format!(
                "pod sandbox {pod_sandbox_id:?} is not running"
            )));
        }
        let netns = PathBuf::from(format!("/proc/{}/ns/net", c.state.pid));
        let tcp = tokio::task::spawn_blocking(move || connect_in(netns, port))
            .await
            .map_err(fail)?
            .map_err(|e| {
                BackendError(format!(
                    "failed to connect to localhost:{port} inside the pod's network namespace: {e}"
                ))
            })?;
        tcp.set_nonblocking(true).map_err(fail)?;
        let mut tcp = tokio::net::TcpStream::from_std(tcp).map_err(fail)?;
        let _ = tcp.set_nodelay(true);
        let _ = tokio::io::copy_bidirectional(&mut stream, &mut tcp).await;
        Ok(())
    }
}

/// A TCP connection to `port` on the loopback of the network namespace `netns` (IPv4, then
/// IPv6), made on a thread of its own that enters the namespace and ends with the connection:
/// a socket stays in the namespace it was made in.
fn connect_in(netns: PathBuf, port: u16) -> std::io::Result<std::net::TcpStream> {
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                let ns = std::fs::File::open(&netns)?;
                nix::sched::setns(ns.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET)
                    .map_err(std::io::Error::from)?;
                let v4 = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
                std::net::TcpStream::connect_timeout(&v4, CONNECT_TIMEOUT).or_else(|e| {
                    let v6 = SocketAddr::from((Ipv6Addr::LOCALHOST, port));
                    std::net::TcpStream::connect_timeout(&v6, CONNECT_TIMEOUT).map_err(|_| e)
                })
            })
            .join()
            .unwrap_or_else(|_| Err(std::io::Error::other("the connecting thread failed")))
    })
}

/// A streaming server's refusal as a gRPC status.
fn refused(e: berth_streaming::ServerError) -> tonic::Status {
    match e {
        berth_streaming::ServerError::InvalidArgument(m) => tonic::Status::invalid_argument(m),
        other => tonic::Status::unavailable(other.to_string()),
    }
}

impl crate::Cri {
    /// `Exec`: the URL of a session of `cmd` in a running container.
    pub(crate) fn exec_url(&self, r: k8s_cri::v1::ExecRequest) -> Result<String, tonic::Status> {
        let (c, _) = self.container(&r.container_id)?;
        if !c.is_running() {
            return Err(tonic::Status::failed_precondition(format!(
                "container {:?} is not running",
                c.id
            )));
        }
        if r.cmd.is_empty() {
            return Err(tonic::Status::invalid_argument("no command given"));
        }
        self.streams
            .get_exec(berth_streaming::ExecRequest {
                container_id: c.id,
                cmd: r.cmd,
                tty: r.tty,
                stdin: r.stdin,
                stdout: r.stdout,
                stderr: r.stderr,
            })
            .map_err(refused)
    }

    /// `Attach`: the URL of a session attached to a running container's process.
    pub(crate) fn attach_url(
        &self,
        r: k8s_cri::v1::AttachRequest,
    ) -> Result<String, tonic::Status> {
        let (c, _) = self.container(&r.container_id)?;
        if !c.is_running() {
            return Err(tonic::Status::failed_precondition(format!(
                "container {:?} is not running",
                c.id
            )));
        }
        self.streams
            .get_attach(berth_streaming::AttachRequest {
                container_id: c.id,
                tty: r.tty,
                stdin: r.stdin,
                stdout: r.stdout,
                stderr: r.stderr,
            })
            .map_err(refused)
    }

    /// `PortForward`: the URL of forwards to ports of a ready pod's loopback.
    pub(crate) fn port_forward_url(
        &self,
        r: k8s_cri::v1::PortForwardRequest,
    ) -> Result<String, tonic::Status> {
        let (c, _) = self.sandbox(&r.pod_sandbox_id)?;
        if !c.is_running() {
            return Err(tonic::Status::failed_precondition(format!(
                "pod sandbox {:?} is not ready",
                c.id
            )));
        }
        let ports = r
            .port
            .iter()
            .map(|p| {
                u16::try_from(*p)
                    .ok()
                    .filter(|p| *p > 0)
                    .ok_or_else(|| tonic::Status::invalid_argument(format!("invalid port {p}")))
            })
            .collect::<Result<Vec<u16>, _>>()?;
        self.streams
            .get_port_forward(berth_streaming::PortForwardRequest {
                pod_sandbox_id: c.id,
                ports,
            })
            .map_err(refused)
    }
}
