//! Image archives and housekeeping: `save` (`GET /images/get`), `load`, `history`, `prune`,
//! `system df`, and `/auth` (login).

use std::io::Write;

use berth_engine::image_archive::LoginError;
use berth_engine::Engine;
use bytes::Bytes;
use http::StatusCode;
use serde_json::json;

use crate::blocking_io::{BodyReader, BodyWriter};
use crate::http::{engine_error, error, json, read_json, response, Req, Resp};
use crate::route::{self, Route};

pub async fn handle(engine: &Engine, route: Route, req: Req) -> Resp {
    match route {
        Route::ImageGet(name) => save(engine, &req, name),
        Route::ImageLoad => load(engine, req),
        Route::ImageHistory(name) => match engine.images.history(&name) {
            Ok(items) => json(StatusCode::OK, &items),
            Err(e) => engine_error(&e),
        },
        Route::ImagePrune => prune(engine, &req).await,
        Route::SystemDf => {
            let engine = engine.clone();
            match tokio::task::spawn_blocking(move || engine.disk_usage()).await {
                Ok(Ok(body)) => json(StatusCode::OK, &body),
                Ok(Err(e)) => engine_error(&e),
                Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
            }
        }
        Route::Auth => auth(engine, req).await,
        _ => error(StatusCode::NOT_FOUND, "page not found"),
    }
}

/// `GET /images/get?names=a&names=b`: the archive, streamed as it is written. An unknown name
/// is a 404 before anything is sent.
fn save(engine: &Engine, req: &Req, name: Option<String>) -> Resp {
    let keys: Vec<String> = match name {
        Some(name) => vec![name],
        None => route::query_all(req.uri().query())
            .into_iter()
            .filter(|(k, _)| k == "names")
            .map(|(_, v)| v)
            .collect(),
    };
    let names = match engine.images.save_names(&keys) {
        Ok(n) => n,
        Err(e) => return engine_error(&e),
    };
    let ids: Vec<String> = keys
        .iter()
        .filter_map(|k| engine.images.resolve(k).ok().map(|r| r.id.to_string()))
        .collect();
    let (tx, body) = crate::http::channel();
    let engine = engine.clone();
    tokio::task::spawn_blocking(move || {
        let mut out = BodyWriter::new(tx);
        // Once the head is out, a failure can only cut the stream short: the client sees a
        // truncated archive.
        if let Err(e) = engine.images.save(&names, &mut out) {
            tracing::warn!(error = %e, "image save");
            return;
        }
        let _ = out.flush();
        for id in &ids {
            crate::images::image_event(&engine, "save", id, id);
        }
    });
    response(StatusCode::OK, Some("application/x-tar"), body)
}

/// One progress line, `\r\n`-terminated as dockerd's stream formatter writes them.
fn line(v: &serde_json::Value) -> Bytes {
    Bytes::from(format!("{v}\r\n"))
}

/// `POST /images/load?quiet=`: the body is the archive; the answer is JSON lines
/// (`{"stream":"Loaded image: bb:local\n"}`), errors in-band.
fn load(engine: &Engine, req: Req) -> Resp {
    let body = BodyReader::spawn(req.into_body());
    let images = engine.images.clone();
    let loading = tokio::task::spawn_blocking(move || images.load_archive(body));
    let (out, body) = crate::http::channel();
    let engine = engine.clone();
    tokio::spawn(async move {
        let result = match loading.await {
            Ok(r) => r.map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        match result {
            Ok(lines) => {
                for l in lines {
                    if let Some(name) = l.strip_prefix("Loaded image: ") {
                        engine.events.publish(
                            berth_api::models::EventMessageTypeEnum::IMAGE,
                            "load",
                            name,
                            [("name".to_string(), name.to_string())].into(),
                        );
                    }
                    let _ = out.send(line(&json!({ "stream": format!("{l}\n") }))).await;
                }
            }
            Err(message) => {
                let _ = out
                    .send(line(
                        &json!({"errorDetail": {"message": message}, "error": message}),
                    ))
                    .await;
            }
        }
    });
    response(StatusCode::OK, Some("application/json"), body)
}

/// `POST /images/prune?filters=`.
async fn prune(engine: &Engine, req: &Req) -> Resp {
    let q = route::query(req.uri().query());
    let filters = match crate::http::filters(&q) {
        Ok(f) => f,
        Err(resp) => return resp,
    };
    let engine = engine.clone();
    match tokio::task::spawn_blocking(move || engine.prune_images(&filters)).await {
        Ok(Ok((entries, reclaimed))) => {
            let deleted: Vec<_> = entries.iter().map(|(k, v)| json!({ k: v })).collect();
            let deleted = if deleted.is_empty() {
                serde_json::Value::Null
            } else {
                json!(deleted)
            };
            json(
                StatusCode::OK,
                &json!({"ImagesDeleted": deleted, "SpaceReclaimed": reclaimed}),
            )
        }
        Ok(Err(e)) => engine_error(&e),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

/// `POST /auth`: `{"username","password","serveraddress"}` checked against the registry.
async fn auth(engine: &Engine, req: Req) -> Resp {
    let body: serde_json::Value = match read_json(req.into_body()).await {
        Ok(b) => b,
        Err(resp) => return resp,
    };
    let field = |k: &str| body[k].as_str().unwrap_or_default().to_string();
    let (user, password, server) = (field("username"), field("password"), field("serveraddress"));
    match engine.login(&user, &password, &server).await {
        Ok(()) => json(
            StatusCode::OK,
            &json!({"Status": "Login Succeeded", "IdentityToken": ""}),
        ),
        Err(LoginError::Unauthorized(m)) => error(StatusCode::UNAUTHORIZED, &m),
        Err(LoginError::Engine(e)) => engine_error(&e),
    }
}
