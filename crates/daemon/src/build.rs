//! `POST /build`, as the classic builder serves it: the context (a tar, maybe compressed, or a
//! lone Dockerfile) streamed into a directory (`berth_build::context`), the Dockerfile read from it, the build run on a
//! blocking thread, its output sent as JSON lines as it comes.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use berth_api::query::bool_value;
use berth_build::instructions::NetworkMode;
use berth_build::solver::output::Message;
use berth_build::solver::{BuildOptions, Output};
use berth_engine::build::{BuildRequest, RunResources};
use berth_engine::Engine;
use bytes::Bytes;
use http::StatusCode;
use serde_json::json;

use crate::blocking_io::BodyReader;
use crate::http::{error, response, Req, Resp};
use crate::route;

/// What the query asks.
struct Query {
    tags: Vec<String>,
    dockerfile: String,
    options: BuildOptions,
    resources: RunResources,
    /// `remote=`: a URL of a tarball or a Dockerfile, the context instead of the body.
    remote: Option<String>,
    quiet: bool,
    /// `stepids=1` (Berth's own): each text says the step it belongs to (`"berthStep"`).
    step_ids: bool,
}

fn parse_query(q: Option<&str>) -> Result<Query, String> {
    let all = route::query_all(q);
    let get = |k: &str| {
        all.iter()
            .rev()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
    };
    let flag = |k: &str| get(k).is_some_and(bool_value);
    let json_map = |k: &str| -> Result<BTreeMap<String, Option<String>>, String> {
        match get(k).filter(|v| !v.is_empty()) {
            None => Ok(BTreeMap::new()),
            Some(v) => serde_json::from_str(v).map_err(|e| format!("invalid {k}: {e}")),
        }
    };
    let network = match get("networkmode").unwrap_or("") {
        "" | "default" | "bridge" => None,
        "none" => Some(NetworkMode::None),
        "host" => Some(NetworkMode::Host),
        other => {
            return Err(format!(
                "network mode {other:?} is not supported for builds"
            ))
        }
    };
    let platform = match get("platform").filter(|p| !p.is_empty()) {
        Some(p) => Some(berth_build::platform::Platform::parse(p).map_err(|e| e.to_string())?),
        None => None,
    };
    let int = |k: &str| -> Result<Option<i64>, String> {
        match get(k).filter(|v| !v.is_empty()) {
            None => Ok(None),
            Some(v) => v
                .parse::<i64>()
                .map(Some)
                .map_err(|_| format!("invalid {k} value {v:?}")),
        }
    };
    let ulimits = match get("ulimits").filter(|v| !v.is_empty()) {
        None => Vec::new(),
        Some(v) => serde_json::from_str(v).map_err(|e| format!("invalid ulimits: {e}"))?,
    };
    let resources = RunResources {
        // The docker CLI sends one `extrahosts` per host; some clients join them with commas.
        extra_hosts: all
            .iter()
            .filter(|(k, _)| k == "extrahosts")
            .flat_map(|(_, v)| v.split(','))
            .filter(|h| !h.is_empty())
            .map(str::to_string)
            .collect(),
        shm_size: int("shmsize")?,
        memory: int("memory")?,
        memory_swap: int("memswap")?,
        cpu_shares: int("cpushares")?,
        cpu_period: int("cpuperiod")?,
        cpu_quota: int("cpuquota")?,
        cpuset_cpus: get("cpusetcpus").map(str::to_string),
        cpuset_mems: get("cpusetmems").map(str::to_string),
        ulimits,
    };
    let labels = json_map("labels")?
        .into_iter()
        .map(|(k, v)| (k, v.unwrap_or_default()))
        .collect();
    Ok(Query {
        tags: all
            .iter()
            .filter(|(k, v)| k == "t" && !v.is_empty())
            .map(|(_, v)| v.clone())
            .collect(),
        dockerfile: get("dockerfile")
            .filter(|d| !d.is_empty())
            .unwrap_or("Dockerfile")
            .to_string(),
        options: BuildOptions {
            build_args: json_map("buildargs")?,
            target: get("target").map(str::to_string),
            labels,
            no_cache: flag("nocache"),
            pull: flag("pull"),
            network,
            platform,
            context: berth_build::context::BuildContext::default(),
            cache_from: match get("cachefrom").filter(|v| !v.is_empty()) {
                None => Vec::new(),
                Some(v) => {
                    serde_json::from_str(v).map_err(|e| format!("invalid cachefrom: {e}"))?
                }
            },
        },
        resources,
        remote: get("remote").filter(|r| !r.is_empty()).map(str::to_string),
        quiet: flag("q"),
        step_ids: flag("stepids"),
    })
}

/// One JSON line of the stream.
fn line(v: &serde_json::Value) -> Bytes {
    let mut b = serde_json::to_vec(v).unwrap_or_default();
    b.push(b'\n');
    Bytes::from(b)
}

/// `POST /build`.
pub fn build(engine: &Engine, req: Req) -> Resp {
    let query = match parse_query(req.uri().query()) {
        Ok(q) => q,
        Err(m) => return error(StatusCode::BAD_REQUEST, &m),
    };
    let auth = berth_engine::distribution::decode_registry_config(
        req.headers()
            .get("X-Registry-Config")
            .and_then(|v| v.to_str().ok()),
    );
    let body = BodyReader::spawn(req.into_body());
    let (tx, resp_body) = crate::http::channel();
    let engine = engine.clone();
    let cancel = Arc::new(AtomicBool::new(false));
    let handle = tokio::runtime::Handle::current();
    // The client gone (the response body dropped), the build is cancelled: its running step
    // is killed and nothing more runs.
    // The watcher holds a sender only until the build ends (`finished` dropped with the
    // build's closure): the response ends when the build's own senders go.
    let watched = tx.clone();
    let flag = Arc::clone(&cancel);
    let (finished, build_over) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        tokio::select! {
            () = watched.closed() => flag.store(true, Ordering::Relaxed),
            _ = build_over => {}
        }
    });
    tokio::task::spawn_blocking(move || {
        let _finished = finished;
        let sender = tx.clone();
        let quiet = query.quiet;
        let step_ids = query.step_ids;
        let cancel_on_gone = Arc::clone(&cancel);
        let out = Output::new(move |m| {
            if quiet && !matches!(m, Message::Aux(_)) {
                return;
            }
            let json = if step_ids {
                m.to_json_with_step()
            } else {
                m.to_json()
            };
            if sender.blocking_send(line(&json)).is_err() {
                cancel_on_gone.store(true, Ordering::Relaxed);
            }
        });
        let _guard = handle.enter();
        let result = run(&engine, query, auth, body, &out, cancel);
        let message = match result {
            Ok(id) => {
                if quiet {
                    let _ = tx.blocking_send(line(&json!({ "stream": format!("{id}\n") })));
                }
                return;
            }
            Err((message, code)) => (message, code),
        };
        let (message, code) = message;
        let mut detail = json!({ "message": message });
        if let Some(c) = code {
            detail["code"] = json!(c);
        }
        let _ = tx.blocking_send(line(&json!({"errorDetail": detail, "error": message})));
    });
    response(StatusCode::OK, Some("application/json"), resp_body)
}

type Failure = (String, Option<i64>);

fn run(
    engine: &Engine,
    query: Query,
    auth: berth_engine::build::RegistryAuth,
    mut body: BodyReader,
    out: &Output,
    cancel: Arc<AtomicBool>,
) -> Result<String, Failure> {
    let dir = engine
        .images
        .store
        .tmp_dir()
        .join(berth_engine::build::scratch_name("context"));
    let result = (|| {
        std::fs::create_dir_all(&dir).map_err(|e| (format!("making the context: {e}"), None))?;
        let context = match &query.remote {
            // The body is ignored (the docker CLI sends none with a URL).
            Some(url) => {
                let file = engine
                    .fetch_context(url, &dir.with_extension("download"))
                    .map_err(|e| (e, None))?;
                berth_build::context::Context::extract(file, &dir, &query.dockerfile)
            }
            None => berth_build::context::Context::extract(&mut body, &dir, &query.dockerfile),
        }
        .map_err(|e| (e.to_string(), None))?;
        let dockerfile = String::from_utf8_lossy(context.dockerfile()).into_owned();
        let mut options = query.options;
        options.context = context.files();
        let req = BuildRequest {
            dockerfile,
            options,
            tags: query.tags,
            resources: query.resources,
            auth,
            cancel,
        };
        engine
            .build(&req, out)
            .map_err(|e| (e.to_string(), e.code()))
    })();
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_file(dir.with_extension("download"));
    if result.is_err() {
        // The error is told after the whole context was read: one sent while the client is
        // still writing closes the connection under it (the docker CLI then says "write:
        // broken pipe", not why). A client still sending after this many bytes is cut off.
        body.drain(DRAIN_LIMIT);
    }
    result
}

/// How much of a context is read (and dropped) after the build failed, at most.
const DRAIN_LIMIT: u64 = 1 << 30;

/// `POST /build/prune?all=&keep-storage=&filters=` (`until` only).
pub async fn prune(engine: &Engine, req: Req) -> Resp {
    let q = route::query(req.uri().query());
    let filters = match crate::http::filters(&q) {
        Ok(f) => f,
        Err(resp) => return resp,
    };
    if let Some(key) = filters.0.keys().find(|k| k.as_str() != "until") {
        return error(StatusCode::BAD_REQUEST, &format!("invalid filter '{key}'"));
    }
    let until = match filters.get("until").first() {
        Some(u) => match humantime::parse_duration(u) {
            Ok(d) => Some(d),
            Err(e) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    &format!("invalid filter 'until={u}': {e}"),
                )
            }
        },
        None => None,
    };
    let keep_storage = match q.get("keep-storage").filter(|v| !v.is_empty()) {
        Some(v) => match v.parse::<u64>() {
            Ok(n) => n,
            Err(_) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    &format!("invalid keep-storage value {v:?}"),
                )
            }
        },
        None => 0,
    };
    let o = berth_engine::build::prune::PruneOptions {
        all: q.get("all").is_some_and(|v| bool_value(v)),
        keep_storage,
        until,
    };
    let engine = engine.clone();
    match tokio::task::spawn_blocking(move || engine.prune_build_cache(&o)).await {
        Ok(Ok((ids, reclaimed))) => crate::http::json(
            StatusCode::OK,
            &json!({"CachesDeleted": ids, "SpaceReclaimed": reclaimed}),
        ),
        Ok(Err(e)) => crate::http::engine_error(&e),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}
