//! The Kubernetes Container Runtime Interface (CRI v1, gRPC) over berth's engine: the
//! `RuntimeService` and `ImageService` kubelet and crictl drive, served on a unix socket of
//! their own ([`serve`]). Images are the engine's (an image pulled here is one `docker images`
//! lists). Pods and their containers are engine containers marked with the CRI's record
//! (`record`), kept out of the Docker API's lists: a pod sandbox holds the pod's namespaces
//! with berth-init's pause mode (`pods`), its network is the first CNI configuration
//! (`network`), and its containers join it (`containers`).

mod containers;
mod events;
mod exec;
mod images;
mod network;
mod pods;
mod record;
mod runtime;
mod security;
mod stats;
mod streaming;

use std::path::{Path, PathBuf};

use berth_engine::error::EngineError;
use berth_engine::Engine;
use k8s_cri::v1::image_service_server::ImageServiceServer;
use k8s_cri::v1::runtime_service_server::RuntimeServiceServer;
use tonic::Status;

/// The CRI version this server speaks.
pub const API_VERSION: &str = "v1";
/// The runtime's name in `Version`.
pub const RUNTIME_NAME: &str = "berth";
/// The default socket (`--cri-socket`).
pub const DEFAULT_SOCKET: &str = "unix:///run/berth/cri.sock";

/// What can stop the CRI server.
#[derive(Debug, thiserror::Error)]
pub enum CriError {
    #[error("invalid CRI socket {0:?}: expected unix:///PATH")]
    Socket(String),
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("serving CRI: {0}")]
    Transport(#[from] tonic::transport::Error),
    #[error(transparent)]
    Streaming(#[from] berth_streaming::ServerError),
}

/// What berthd's flags say of the CRI.
#[derive(Debug, Clone)]
pub struct Options {
    /// Where pod network configurations are (`--cni-conf-dir`, `/etc/cni/net.d`).
    pub cni_conf_dir: PathBuf,
    /// Where the streaming server of `Exec`, `Attach` and `PortForward` listens
    /// (`--cri-stream-address`; a free loopback port by default, as containerd's).
    pub stream_address: std::net::SocketAddr,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            cni_conf_dir: PathBuf::from(DEFAULT_CNI_CONF_DIR),
            stream_address: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
        }
    }
}

/// Where kubelet's runtimes find pod network configurations.
pub const DEFAULT_CNI_CONF_DIR: &str = "/etc/cni/net.d";

/// The services' shared state: the engine and the options.
#[derive(Clone)]
pub struct Cri {
    engine: Engine,
    options: Options,
    /// Held while the pods' network is looked up or made.
    network_lock: std::sync::Arc<tokio::sync::Mutex<()>>,
    /// The last CPU reading of each container (`stats`).
    cpu_readings: std::sync::Arc<stats::CpuReadings>,
    /// The streaming server the URLs of `Exec`, `Attach` and `PortForward` point at.
    streams: std::sync::Arc<berth_streaming::Server>,
}

impl std::fmt::Debug for Cri {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cri")
            .field("options", &self.options)
            .field("streams", &self.streams.local_addr())
            .finish_non_exhaustive()
    }
}

impl Cri {
    /// The services over `engine`, with their streaming server started.
    pub async fn new(engine: Engine, options: Options) -> Result<Cri, CriError> {
        let backend = std::sync::Arc::new(streaming::EngineBackend {
            engine: engine.clone(),
        });
        let config = berth_streaming::Config {
            addr: options.stream_address,
            ..Default::default()
        };
        let streams = berth_streaming::Server::bind(config, backend).await?;
        Ok(Cri {
            engine,
            options,
            network_lock: Default::default(),
            cpu_readings: Default::default(),
            streams: std::sync::Arc::new(streams),
        })
    }
}

/// The path of `unix:///PATH` (or a bare absolute path).
pub fn socket_path(address: &str) -> Result<PathBuf, CriError> {
    let path = address.strip_prefix("unix://").unwrap_or(address);
    if path.starts_with('/') {
        Ok(PathBuf::from(path))
    } else {
        Err(CriError::Socket(address.to_string()))
    }
}

/// A bound CRI socket, removed when dropped.
#[derive(Debug)]
pub struct Listener {
    listener: Option<tokio::net::UnixListener>,
    path: PathBuf,
}

impl Listener {
    /// Binds `path` (0660, root's), replacing a stale socket and creating its directory.
    pub fn bind(path: &Path) -> Result<Listener, CriError> {
        let io = |what: &'static str| {
            let path = path.to_path_buf();
            move |source| CriError::Io { what, path, source }
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io("creating the directory of"))?;
        }
        match std::fs::remove_file(path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(io("removing the stale socket")(e))
            }
            _ => {}
        }
        let listener = tokio::net::UnixListener::bind(path).map_err(io("binding"))?;
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))
            .map_err(io("setting the mode of"))?;
        Ok(Listener {
            listener: Some(listener),
            path: path.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Serves `RuntimeService` and `ImageService` on `listener` until the future is dropped or the
/// transport fails.
/// The socket is removed when this returns or is dropped.
pub async fn serve(
    engine: Engine,
    options: Options,
    mut listener: Listener,
) -> Result<(), CriError> {
    let cri = Cri::new(engine, options).await?;
    let Some(l) = listener.listener.take() else {
        return Err(CriError::Socket(listener.path.display().to_string()));
    };
    tracing::info!(socket = %listener.path.display(), "serving CRI v1");
    let accept = tokio_stream::wrappers::UnixListenerStream::new(l);
    tonic::transport::Server::builder()
        .add_service(RuntimeServiceServer::new(cri.clone()))
        .add_service(ImageServiceServer::new(cri))
        .serve_with_incoming(accept)
        .await?;
    Ok(())
}

/// The gRPC status of an engine error.
pub(crate) fn status(e: EngineError) -> Status {
    match e {
        EngineError::NotFound(m) => Status::not_found(m),
        EngineError::InvalidParameter(m) => Status::invalid_argument(m),
        EngineError::Conflict(m) => Status::failed_precondition(m),
        EngineError::Forbidden(m) => Status::permission_denied(m),
        EngineError::NotImplemented(m) => Status::unimplemented(m),
        other => Status::internal(other.to_string()),
    }
}

/// The answer of a call this runtime does not serve yet.
pub(crate) fn unimplemented(call: &str) -> Status {
    Status::unimplemented(format!("CRI {call} is not implemented by berth yet"))
}
