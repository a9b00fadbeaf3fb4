//! Container files and figures: `top`, `stats`, `export`, the archive endpoints of `docker cp`
//! and `commit`. The engine's file operations block (mounts, tar reading and writing), so they
//! run on blocking threads; tars stream through channels in both directions.

use std::io::Write;
use std::time::Duration;

use berth_api::query::bool_value;
use berth_engine::files::archive::ExtractOptions;
use berth_engine::files::commit::CommitRequest;
use berth_engine::files::stats::stats_json;
use berth_engine::Engine;
use bytes::Bytes;
use http::{HeaderValue, Method, StatusCode};
use serde_json::json;

use crate::blocking_io::{BodyReader, BodyWriter};
use crate::http::{channel, empty, engine_error, error, json, response, Req, Resp};
use crate::route::{self, Route};

/// How much of a request body is read (and dropped) after the answer is known, at most.
const DRAIN_LIMIT: u64 = 64 << 20;

/// The header `docker cp` reads the path's stat from.
const PATH_STAT: &str = "X-Docker-Container-Path-Stat";

pub async fn handle(engine: &Engine, route: Route, req: Req) -> Resp {
    let q = route::query(req.uri().query());
    match route {
        Route::ContainerTop(id) => {
            let ps_args = q.get("ps_args").cloned();
            let engine = engine.clone();
            match blocking(move || engine.top(&id, ps_args.as_deref())).await {
                Ok(top) => json(StatusCode::OK, &top),
                Err(e) => engine_error(&e),
            }
        }
        Route::ContainerChanges(id) => {
            let engine = engine.clone();
            match blocking(move || engine.changes(&id)).await {
                Ok(changes) => json(StatusCode::OK, &changes),
                Err(e) => engine_error(&e),
            }
        }
        Route::ContainerStats(id) => {
            let stream = q.get("stream").is_none_or(|v| bool_value(v));
            let one_shot = q.get("one-shot").is_some_and(|v| bool_value(v));
            stats(engine, &id, stream, one_shot).await
        }
        Route::ContainerExport(id) => export(engine, id).await,
        Route::ContainerArchive(id) => archive(engine, id, &q, req).await,
        Route::Commit => {
            let all = route::query_all(req.uri().query());
            let get = |k: &str| q.get(k).cloned().unwrap_or_default();
            let request = CommitRequest {
                container: get("container"),
                repo: q.get("repo").cloned(),
                tag: q.get("tag").cloned(),
                comment: get("comment"),
                author: get("author"),
                changes: all
                    .into_iter()
                    .filter(|(k, _)| k == "changes")
                    .map(|(_, v)| v)
                    .filter(|v| !v.is_empty())
                    .collect(),
                pause: q.get("pause").is_none_or(|v| bool_value(v)),
            };
            let engine = engine.clone();
            match blocking(move || engine.commit(&request)).await {
                Ok(id) => json(StatusCode::CREATED, &json!({ "Id": id })),
                Err(e) => engine_error(&e),
            }
        }
        _ => error(StatusCode::NOT_FOUND, "page not found"),
    }
}

/// Runs blocking engine work on a blocking thread.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> berth_engine::Result<T> + Send + 'static,
) -> berth_engine::Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| Err(berth_engine::EngineError::Internal(e.to_string())))
}

/// One object (`stream=0`: after a second, so that `precpu_stats` is filled and the CLI can
/// compute a CPU percentage; with `one-shot` at once), or one per second until the client goes
/// or the container stops.
async fn stats(engine: &Engine, id: &str, stream: bool, one_shot: bool) -> Resp {
    let first = match engine.stats_sample(id) {
        Ok(s) => s,
        Err(e) => return engine_error(&e),
    };
    if !stream {
        let (c, pre) = first;
        if one_shot || !c.is_running() {
            return json(StatusCode::OK, &stats_json(&c, &pre, None));
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        return match engine.stats_sample(&c.id) {
            Ok((c, cur)) => json(StatusCode::OK, &stats_json(&c, &cur, Some(&pre))),
            Err(e) => engine_error(&e),
        };
    }
    let (tx, body) = channel();
    let engine = engine.clone();
    tokio::spawn(async move {
        let (mut c, mut cur) = first;
        let mut pre = None;
        while let Ok(mut line) = serde_json::to_vec(&stats_json(&c, &cur, pre.as_ref())) {
            line.push(b'\n');
            if tx.send(Bytes::from(line)).await.is_err() || !c.is_running() {
                break;
            }
            tokio::select! {
                () = tokio::time::sleep(Duration::from_secs(1)) => {}
                () = tx.closed() => break,
            }
            let Ok((next_c, next)) = engine.stats_sample(&c.id) else {
                break;
            };
            pre = Some(std::mem::replace(&mut cur, next));
            c = next_c;
        }
    });
    response(StatusCode::OK, Some("application/json"), body)
}

/// `GET /containers/{id}/export`: the whole tree, streamed.
async fn export(engine: &Engine, id: String) -> Resp {
    let engine = engine.clone();
    let rootfs = match blocking(move || engine.rootfs(&id)).await {
        Ok(r) => r,
        Err(e) => return engine_error(&e),
    };
    let (tx, body) = channel();
    tokio::task::spawn_blocking(move || {
        let mut w = BodyWriter::new(tx);
        if let Err(e) = rootfs.export(&mut w) {
            tracing::warn!(container = %rootfs.container.id, error = %e, "export");
            return;
        }
        let _ = w.flush();
    });
    response(StatusCode::OK, Some("application/octet-stream"), body)
}

/// `HEAD`, `GET` and `PUT /containers/{id}/archive?path=`.
async fn archive(
    engine: &Engine,
    id: String,
    q: &std::collections::HashMap<String, String>,
    req: Req,
) -> Resp {
    let Some(path) = q.get("path").filter(|p| !p.is_empty()).cloned() else {
        return error(
            StatusCode::BAD_REQUEST,
            "bad parameter: path cannot be empty",
        );
    };
    let method = req.method().clone();
    let engine = engine.clone();
    let rootfs = match blocking(move || engine.container_view(&id)).await {
        Ok(r) => r,
        Err(e) => return engine_error(&e),
    };
    if method == Method::PUT {
        let opts = ExtractOptions {
            no_overwrite_dir_non_dir: q.get("noOverwriteDirNonDir").is_some_and(|v| bool_value(v)),
            copy_uid_gid: q.get("copyUIDGID").is_some_and(|v| bool_value(v)),
        };
        let mut reader = BodyReader::spawn(req.into_body());
        let extracted = blocking(move || {
            let result = rootfs.extract(&path, &mut reader, opts);
            // The answer comes after the whole body was read: one sent while the client is
            // still writing (tar padding after the end marker, or the rest after an error)
            // closes the connection under it ("write: broken pipe" in `docker cp`).
            reader.drain(DRAIN_LIMIT);
            result
        })
        .await;
        return match extracted {
            Ok(()) => response(StatusCode::OK, None, empty()),
            Err(e) => engine_error(&e),
        };
    }
    let (rootfs, path, stat) = match blocking(move || {
        let stat = rootfs.stat(&path)?;
        Ok((rootfs, path, stat))
    })
    .await
    {
        Ok(t) => t,
        Err(e) => return engine_error(&e),
    };
    let header = HeaderValue::from_str(&stat.header());
    let mut resp = if method == Method::HEAD {
        response(StatusCode::OK, None, empty())
    } else {
        let (tx, body) = channel();
        tokio::task::spawn_blocking(move || {
            let mut w = BodyWriter::new(tx);
            if let Err(e) = rootfs.write_tar(&path, &mut w) {
                tracing::warn!(container = %rootfs.container.id, error = %e, "archive");
                return;
            }
            let _ = w.flush();
        });
        response(StatusCode::OK, Some("application/x-tar"), body)
    };
    if let Ok(v) = header {
        resp.headers_mut().insert(PATH_STAT, v);
    }
    resp
}
