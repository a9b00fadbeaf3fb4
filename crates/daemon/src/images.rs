//! `/images/...`: list, inspect, import (`POST /images/create?fromSrc=-`), tag, remove.

use berth_api::query::bool_value;
use berth_engine::Engine;
use berth_image::reference::Reference;
use bytes::Bytes;
use http::StatusCode;
use serde_json::json;

use crate::blocking_io::BodyReader;
use crate::http::{engine_error, error, full, json, no_content, response, Req, Resp};
use crate::route::{self, Route};

pub async fn handle(engine: &Engine, route: Route, req: Req) -> Resp {
    let q = route::query(req.uri().query());
    let result = match route {
        Route::ImageList => {
            // `all` adds intermediate images, which a store without parent chains has none
            // of; `digests` only changes the CLI's columns (RepoDigests are always sent).
            match crate::http::filters(&q) {
                Ok(f) => engine.images.list_filtered(&f).map(|l| {
                    let mut v = serde_json::to_value(&l).unwrap_or_default();
                    if let Some(list) = v.as_array_mut() {
                        list.iter_mut().for_each(berth_engine::wire::image_summary);
                    }
                    json(StatusCode::OK, &v)
                }),
                Err(resp) => return resp,
            }
        }
        Route::ImageInspect(name) => engine
            .images
            .inspect_json(&name)
            .map(|i| json(StatusCode::OK, &i)),
        Route::ImageTag(name) => {
            let repo = q.get("repo").cloned().unwrap_or_default();
            let tag = q.get("tag").map(String::as_str);
            engine.images.tag(&name, &repo, tag).map(|()| {
                // dockerd's `tag` event: the image's id, the new name (familiar).
                let new = match tag.filter(|t| !t.is_empty()) {
                    Some(t) => format!("{repo}:{t}"),
                    None => repo.clone(),
                };
                let new = new.parse::<Reference>().map_or(new, |r| r.familiar());
                if let Ok(id) = engine.images.resolve(&name).map(|r| r.id.to_string()) {
                    image_event(engine, "tag", &id, &new);
                }
                no_content(StatusCode::CREATED)
            })
        }
        Route::ImageDelete(name) => {
            let force = q.get("force").is_some_and(|v| bool_value(v));
            let id = engine.images.resolve(&name).map(|r| r.id.to_string());
            engine.images.remove(&name, force).map(|entries| {
                // dockerd's `untag` (one per name) and `delete` events, by image id.
                if let Ok(id) = &id {
                    for (kind, _) in &entries {
                        let action = if kind == "Untagged" {
                            "untag"
                        } else {
                            "delete"
                        };
                        image_event(engine, action, id, id);
                    }
                }
                let list: Vec<_> = entries.iter().map(|(k, v)| json!({ k: v })).collect();
                json(StatusCode::OK, &list)
            })
        }
        Route::ImageCreate => {
            if q.get("fromSrc").map(String::as_str) == Some("-") {
                return import(engine, &q, req).await;
            }
            let auth = header(&req, "X-Registry-Auth");
            return pull(engine, &q, auth).await;
        }
        Route::ImagePush(name) => {
            let auth = header(&req, "X-Registry-Auth");
            return push(engine, &name, &q, auth).await;
        }
        Route::ImageSearch => {
            let filters = match crate::http::filters(&q) {
                Ok(f) => f,
                Err(resp) => return resp,
            };
            let term = q.get("term").cloned().unwrap_or_default();
            let limit = match q.get("limit").map(|l| l.parse::<i64>()) {
                None => None,
                Some(Ok(l)) => Some(l),
                Some(Err(_)) => {
                    return error(StatusCode::BAD_REQUEST, "invalid limit: not a number")
                }
            };
            let auth =
                berth_engine::distribution::decode_auth(header(&req, "X-Registry-Auth").as_deref());
            engine
                .search(&term, limit, &filters, auth)
                .await
                .map(|results| json(StatusCode::OK, &results))
        }
        Route::DistributionInspect(name) => {
            let reference = match name.parse::<Reference>() {
                Ok(r) => r,
                Err(e) => {
                    return error(
                        StatusCode::BAD_REQUEST,
                        &format!("invalid reference format: {e}"),
                    )
                }
            };
            let auth =
                berth_engine::distribution::decode_auth(header(&req, "X-Registry-Auth").as_deref());
            engine
                .distribution_inspect(&reference, auth)
                .await
                .map(|v| json(StatusCode::OK, &v))
        }
        _ => return error(StatusCode::NOT_FOUND, "page not found"),
    };
    result.unwrap_or_else(|e| engine_error(&e))
}

/// An image event as dockerd's `LogImageEvent` makes it: the id, and a `name` attribute.
pub fn image_event(engine: &Engine, action: &str, id: &str, name: &str) {
    engine.events.publish(
        berth_api::models::EventMessageTypeEnum::IMAGE,
        action,
        id,
        [("name".to_string(), name.to_string())].into(),
    );
}

fn header(req: &Req, name: &str) -> Option<String> {
    req.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// `docker import`: the request body is the tarball; answers with JSON-lines progress ending
/// in `{"status":"sha256:..."}`.
async fn import(engine: &Engine, q: &std::collections::HashMap<String, String>, req: Req) -> Resp {
    let name = match (q.get("repo").filter(|r| !r.is_empty()), q.get("tag")) {
        (Some(repo), Some(tag)) if !tag.is_empty() => Some(format!("{repo}:{tag}")),
        (Some(repo), _) => Some(repo.clone()),
        _ => None,
    };
    let reference = match name.map(|n| n.parse::<Reference>()).transpose() {
        Ok(r) => r,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                &format!("invalid reference format: {e}"),
            )
        }
    };
    let changes: Vec<String> = route::query_all(req.uri().query())
        .into_iter()
        .filter(|(k, _)| k == "changes")
        .map(|(_, v)| v)
        .collect();
    // The tarball is applied as it arrives, never held whole.
    let body = BodyReader::spawn(req.into_body());
    let store = std::sync::Arc::clone(&engine.images.store);
    let imported =
        tokio::task::spawn_blocking(move || store.import(body, reference.as_ref(), &changes)).await;
    match imported {
        Ok(Ok(id)) => {
            image_event(engine, "import", &id.to_string(), &id.to_string());
            let line = format!("{}\r\n", json!({"status": id.to_string()}));
            response(StatusCode::OK, Some("application/json"), full(line))
        }
        Ok(Err(e)) => {
            let line = format!(
                "{}\r\n",
                json!({"errorDetail": {"message": e.to_string()}, "error": e.to_string()})
            );
            response(StatusCode::OK, Some("application/json"), full(line))
        }
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

/// Runs a pull or push, streaming its messages as JSON lines (`\r\n`-terminated, as dockerd's
/// progress). An error before any progress (an unknown tag) is a plain HTTP error instead.
pub async fn progress_stream<F>(run: F) -> Resp
where
    F: FnOnce(
        berth_engine::distribution::Messages,
    ) -> tokio::task::JoinHandle<berth_engine::Result<()>>,
{
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<serde_json::Value>();
    let mut task = run(tx);
    let mut buffered = Vec::new();
    // Wait for real progress (beyond the first "Pulling from") or the end.
    let early_end = loop {
        tokio::select! {
            m = rx.recv() => match m {
                Some(m) => {
                    buffered.push(m);
                    if buffered.len() >= 2 {
                        break None;
                    }
                }
                None => break Some((&mut task).await),
            },
            r = &mut task => break Some(r),
        }
    };
    if let Some(result) = &early_end {
        match result {
            Ok(Err(e)) => return engine_error(e),
            Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
            Ok(Ok(())) => {}
        }
    }
    let (out, body) = crate::http::channel();
    tokio::spawn(async move {
        let line = |v: &serde_json::Value| Bytes::from(format!("{v}\r\n"));
        for m in &buffered {
            let _ = out.send(line(m)).await;
        }
        while let Some(m) = rx.recv().await {
            let _ = out.send(line(&m)).await;
        }
        let result = match early_end {
            Some(r) => r,
            None => task.await,
        };
        let failure = match result {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(e.to_string()),
            Err(e) => Some(e.to_string()),
        };
        if let Some(message) = failure {
            let _ = out
                .send(line(
                    &json!({"errorDetail": {"message": message}, "error": message}),
                ))
                .await;
        }
    });
    response(StatusCode::OK, Some("application/json"), body)
}

/// `POST /images/create?fromImage=&tag=`.
pub async fn pull(
    engine: &Engine,
    q: &std::collections::HashMap<String, String>,
    auth: Option<String>,
) -> Resp {
    let from = q.get("fromImage").cloned().unwrap_or_default();
    let text = match q.get("tag").filter(|t| !t.is_empty()) {
        Some(t) if t.starts_with("sha256:") => format!("{from}@{t}"),
        Some(t) => format!("{from}:{t}"),
        None => from,
    };
    let reference: Reference = match text.parse() {
        Ok(r) => r,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                &format!("invalid reference format: {e}"),
            )
        }
    };
    let credential = berth_engine::distribution::decode_auth(auth.as_deref());
    let engine = engine.clone();
    progress_stream(move |tx| {
        tokio::spawn(async move { engine.pull(&reference, credential, tx).await })
    })
    .await
}

/// `POST /images/{name}/push?tag=`.
pub async fn push(
    engine: &Engine,
    name: &str,
    q: &std::collections::HashMap<String, String>,
    auth: Option<String>,
) -> Resp {
    let text = match q.get("tag").filter(|t| !t.is_empty()) {
        Some(t) => format!("{name}:{t}"),
        None => name.to_string(),
    };
    let reference: Reference = match text.parse() {
        Ok(r) => r,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                &format!("invalid reference format: {e}"),
            )
        }
    };
    let credential = berth_engine::distribution::decode_auth(auth.as_deref());
    let engine = engine.clone();
    progress_stream(move |tx| {
        tokio::spawn(async move { engine.push(&reference, credential, tx).await })
    })
    .await
}
