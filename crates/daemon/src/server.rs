//! The API server: one task per connection (the docker CLI opens several at once and
//! keeps `wait` and attach open for a container's life), HTTP/1.1 with upgrades for hijacked
//! attach and exec, Docker's common headers on every answer.

use std::sync::Arc;

use berth_engine::Engine;
use http::{HeaderValue, Request, StatusCode};
use hyper::body::{Body as _, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};

use berth_daemon::body::{self, BodyLimit};

use crate::http::{error, too_large, Req, ReqBody, Resp};
use crate::route::{self, Route, RouteError};
use crate::{build, containers, exec, files, image_archive, images, networks, system, volumes};

/// Shared by every request.
#[derive(Debug)]
pub struct State {
    pub engine: Engine,
    /// Gives memory back once no request came for a while (see [`idle_trim`]).
    pub trimmer: std::sync::Mutex<berth_memtrim::Trimmer>,
}

impl State {
    pub fn new(engine: Engine) -> State {
        let mut trimmer = berth_memtrim::Trimmer::threaded(IDLE_TRIM);
        // Opening the stores and reconciling the containers was the first burst.
        trimmer.touch();
        State {
            engine,
            trimmer: std::sync::Mutex::new(trimmer),
        }
    }

    fn trimmer(&self) -> std::sync::MutexGuard<'_, berth_memtrim::Trimmer> {
        self.trimmer
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// How long berthd goes without a request before it gives memory back.
const IDLE_TRIM: std::time::Duration = std::time::Duration::from_secs(5);

/// Trims berthd's memory whenever it has been idle for [`IDLE_TRIM`] after some activity: the
/// daemon mostly waits, and bursts (a pull, a hundred containers) leave code and heap behind.
pub async fn idle_trim(state: Arc<State>) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
    loop {
        tick.tick().await;
        state.trimmer().trim_if_idle();
    }
}

/// Serves one connection (a Unix socket's, a TCP one's, a TLS stream) on a task of its own;
/// `conn` is the descriptor under it (see [`crate::hijack`]).
pub fn spawn_connection<IO>(state: Arc<State>, stream: IO, conn: crate::hijack::Connection)
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    tokio::spawn(async move {
        let service = service_fn(move |mut req: Request<Incoming>| {
            let state = Arc::clone(&state);
            req.extensions_mut().insert(conn);
            async move { Ok::<_, std::convert::Infallible>(handle(&state, req).await) }
        });
        if let Err(e) = hyper::server::conn::http1::Builder::new()
            // A client gets HEADER_TIMEOUT to send a request's head, also between the
            // requests of a kept-alive connection: a slow or idle client cannot hold a
            // connection forever. Heads are at most hyper's ~400 KiB buffer and 100
            // headers (431 beyond).
            .timer(TokioTimer::new())
            .header_read_timeout(HEADER_TIMEOUT)
            .serve_connection(TokioIo::new(stream), service)
            .with_upgrades()
            .await
        {
            tracing::debug!(error = %e, "connection");
        }
    });
}

/// How long a client may take to send a request's head (and a kept-alive connection may stay
/// idle), as Go's `ReadHeaderTimeout`.
pub const HEADER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// After a failed accept: out of descriptors or memory (too many connections), wait a moment
/// for some to close rather than spin; other errors concern one connection only. The
/// daemon never stops serving because of them.
pub async fn accept_failed(e: &std::io::Error) {
    use std::sync::atomic::{AtomicU64, Ordering};
    static LAST_WARNING: AtomicU64 = AtomicU64::new(0);
    let exhausted = matches!(
        e.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    // One warning a minute at most: the condition can last.
    if LAST_WARNING.load(Ordering::Relaxed) + 60 <= now {
        LAST_WARNING.store(now, Ordering::Relaxed);
        tracing::warn!(error = %e, "accepting a connection");
    }
    if exhausted {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

async fn handle(state: &State, req: Request<Incoming>) -> Resp {
    state.trimmer().touch();
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let mut resp = match route::parse(&method, &path) {
        Ok((route, _version)) => {
            tracing::debug!(%method, %path, "request");
            let limit = body::limit(&route);
            let (parts, incoming) = req.into_parts();
            // A declared length over the route's limit is refused before any of it is read.
            let declared = incoming.size_hint().lower();
            let max = match limit {
                BodyLimit::Ignored => Some(body::IGNORED_MAX),
                BodyLimit::Json(n) => Some(n as u64),
                BodyLimit::Stream => None,
            };
            match max {
                Some(max) if declared > max => too_large(max),
                _ => {
                    let req = Request::from_parts(parts, ReqBody::new(incoming, limit));
                    dispatch(state, route, req).await
                }
            }
        }
        Err(RouteError::NotFound) => return error(StatusCode::NOT_FOUND, "page not found"),
        Err(RouteError::Version(m)) => error(StatusCode::BAD_REQUEST, &m),
    };
    if resp.status() != StatusCode::SWITCHING_PROTOCOLS {
        let h = resp.headers_mut();
        for (k, v) in [
            ("Api-Version", berth_api::API_VERSION),
            ("Docker-Experimental", "false"),
            ("Ostype", "linux"),
            (
                "Server",
                concat!("Berth/", env!("CARGO_PKG_VERSION"), " (linux)"),
            ),
        ] {
            h.insert(k, HeaderValue::from_static(v));
        }
    }
    resp
}

async fn dispatch(state: &State, route: Route, req: Req) -> Resp {
    use Route::*;
    let engine = &state.engine;
    match route {
        Ping => system::ping(req.method()),
        Version => system::version(),
        Info => system::info(engine),
        Events => system::events(engine, req.uri().query()),
        ContainerCreate | ContainerList | ContainerInspect(_) | ContainerStart(_)
        | ContainerStop(_) | ContainerRestart(_) | ContainerKill(_) | ContainerPause(_)
        | ContainerUnpause(_) | ContainerWait(_) | ContainerDelete(_) | ContainerLogs(_)
        | ContainerAttach(_) | ContainerAttachWs(_) | ContainerResize(_) | ContainerRename(_)
        | ContainerUpdate(_) | ContainerPrune => containers::handle(engine, route, req).await,
        ExecCreate(_) | ExecStart(_) | ExecResize(_) | ExecInspect(_) => {
            exec::handle(engine, route, req).await
        }
        ImageList
        | ImageCreate
        | ImageInspect(_)
        | ImageTag(_)
        | ImageDelete(_)
        | ImagePush(_)
        | DistributionInspect(_)
        | ImageSearch => images::handle(engine, route, req).await,
        ContainerTop(_) | ContainerStats(_) | ContainerExport(_) | ContainerChanges(_)
        | ContainerArchive(_) | Commit => files::handle(engine, route, req).await,
        NetworkList | NetworkCreate | NetworkPrune | NetworkInspect(_) | NetworkDelete(_)
        | NetworkConnect(_) | NetworkDisconnect(_) => networks::handle(engine, route, req).await,
        Build => build::build(engine, req),
        BuildPrune => build::prune(engine, req).await,
        VolumeList | VolumeCreate | VolumePrune | VolumeInspect(_) | VolumeDelete(_) => {
            volumes::handle(engine, route, req).await
        }
        ImageLoad | ImageGet(_) | ImageHistory(_) | ImagePrune | SystemDf | Auth => {
            image_archive::handle(engine, route, req).await
        }
        Swarm(_) | PluginList | Plugin(_) | PluginInstall => system::unsupported(&route),
    }
}
