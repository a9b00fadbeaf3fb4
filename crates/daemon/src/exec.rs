//! `/containers/{id}/exec` and `/exec/{id}/...`.

use berth_api::models::{ExecConfig, ExecStartConfig};
use berth_engine::Engine;
use http::StatusCode;
use hyper_util::rt::TokioIo;
use serde_json::json;

use crate::containers::{pump_framed, upgraded_response, Framing};
use crate::http::{empty, engine_error, error, json, read_json, response, Req, Resp};
use crate::route::{self, Route};

pub async fn handle(engine: &Engine, route: Route, mut req: Req) -> Resp {
    let q = route::query(req.uri().query());
    let int = |k: &str| {
        q.get(k)
            .and_then(|v| v.parse::<i64>().ok())
            .unwrap_or(0)
            .max(0) as u32
    };
    match route {
        Route::ExecCreate(id) => {
            let config: ExecConfig = match read_json(req.into_body()).await {
                Ok(c) => c,
                Err(resp) => return resp,
            };
            match engine.exec_create(&id, config) {
                Ok(exec) => json(StatusCode::CREATED, &json!({ "Id": exec })),
                Err(e) => engine_error(&e),
            }
        }
        Route::ExecStart(id) => {
            let conn = req.extensions().get::<crate::hijack::Connection>().copied();
            let upgrade = hyper::upgrade::on(&mut req);
            let start: ExecStartConfig = match read_json(req.into_body()).await {
                Ok(c) => c,
                Err(resp) => return resp,
            };
            let detach = engine
                .exec_detach_keys(&id)
                .map(|k| crate::containers::detach_keys(k.as_deref()));
            let prepared = match engine.exec_prepare(&id) {
                Ok(p) => p,
                Err(e) => return engine_error(&e),
            };
            if start.detach == Some(true) {
                let stream = match engine.exec_launch(prepared).await {
                    Ok(s) => s,
                    Err(e) => return engine_error(&e),
                };
                // Nobody reads the output: drain it so the process never blocks on a pipe.
                tokio::spawn(async move {
                    let mut stream = stream;
                    let _ = tokio::io::copy(&mut stream, &mut tokio::io::sink()).await;
                });
                return response(StatusCode::OK, None, empty());
            }
            // The process starts once the client has the 101 (as dockerd): output sent with
            // the answer could end up in a client's header buffer.
            let engine = engine.clone();
            tokio::spawn(async move {
                let Ok(upgraded) = upgrade.await else { return };
                crate::hijack::until_client_read(conn).await;
                let mut io = TokioIo::new(upgraded);
                let tty = prepared.tty;
                let start_tty = start.tty.unwrap_or(false);
                let framing = Framing::for_exec(tty, start_tty);
                match engine.exec_launch(prepared).await {
                    Ok(stream) => pump_framed(io, stream, detach, tty, framing).await,
                    Err(e) => {
                        // dockerd writes the error into the hijacked stream (a stdout frame
                        // when the start has no tty).
                        use tokio::io::AsyncWriteExt;
                        let text = format!("{e}\r\n");
                        if !start_tty {
                            let header = berth_api::stdcopy::header(
                                berth_api::stdcopy::Stream::Stdout,
                                text.len(),
                            );
                            let _ = io.write_all(&header).await;
                        }
                        let _ = io.write_all(text.as_bytes()).await;
                        let _ = io.shutdown().await;
                    }
                }
            });
            upgraded_response()
        }
        Route::ExecResize(id) => match engine.exec_resize(&id, int("h"), int("w")).await {
            Ok(()) => response(StatusCode::OK, None, empty()),
            Err(e) => engine_error(&e),
        },
        Route::ExecInspect(id) => match engine.exec_inspect(&id).await {
            Ok(i) => {
                let mut v = serde_json::to_value(&i).unwrap_or_default();
                berth_engine::wire::exec_inspect(&mut v);
                json(StatusCode::OK, &v)
            }
            Err(e) => engine_error(&e),
        },
        _ => error(StatusCode::NOT_FOUND, "page not found"),
    }
}
