//! `/containers/...`: create, list, inspect, start, stop, kill, wait, remove, logs, attach.

use berth_api::models::ContainerCreateBody;
use berth_api::query::bool_value;
use berth_engine::attach::{AttachOptions, Attached, MonitorStream};
use berth_engine::lifecycle::WaitCondition;
use berth_engine::logs::LogOptions;
use berth_engine::Engine;
use bytes::Bytes;
use http::{HeaderValue, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::json;
use tokio::io::AsyncWriteExt;

use crate::http::{
    channel, decode_value, empty, engine_error, error, json, no_content, read_json_value, response,
    stream_body, Req, Resp,
};
use crate::route::{self, Route};

pub async fn handle(engine: &Engine, route: Route, req: Req) -> Resp {
    let q = route::query(req.uri().query());
    let flag = |k: &str| q.get(k).is_some_and(|v| bool_value(v));
    let int = |k: &str| q.get(k).and_then(|v| v.parse::<i64>().ok());
    let result = match route {
        Route::ContainerCreate => {
            let value = match read_json_value(req.into_body()).await {
                Ok(v) => v,
                Err(resp) => return resp,
            };
            // Mount types and propagations Docker does not know get dockerd's words, not a
            // decoding error.
            if let Some(v) = &value {
                if let Err(e) = berth_engine::mounts::check_raw_mounts(v) {
                    return engine_error(&e);
                }
            }
            // `Config.MacAddress` (API < 1.44), which the models do not have.
            let mac = value
                .as_ref()
                .and_then(|v| v.get("MacAddress"))
                .and_then(|m| m.as_str())
                .unwrap_or_default()
                .to_string();
            let mut body: ContainerCreateBody = match decode_value(value) {
                Ok(b) => b,
                Err(message) => return error(StatusCode::BAD_REQUEST, &message),
            };
            if let Err(e) = berth_engine::network::apply_config_mac(&mut body, &mac) {
                return engine_error(&e);
            }
            // Creating writes and fsyncs the record and the container's files: off the
            // async workers, which serve every other request meanwhile.
            let name = q.get("name").cloned();
            let creator = engine.clone();
            tokio::task::spawn_blocking(move || creator.create(name.as_deref(), body))
                .await
                .unwrap_or_else(|e| Err(berth_engine::EngineError::Internal(e.to_string())))
                .map(|(id, warnings)| {
                    json(
                        StatusCode::CREATED,
                        &json!({"Id": id, "Warnings": warnings}),
                    )
                })
        }
        Route::ContainerList => {
            let filters = match crate::http::filters(&q) {
                Ok(f) => f,
                Err(resp) => return resp,
            };
            let limit = int("limit").filter(|l| *l > 0).map(|l| l as usize);
            engine.list(flag("all"), limit, &filters).map(|l| {
                let mut v = serde_json::to_value(&l).unwrap_or_default();
                if let Some(list) = v.as_array_mut() {
                    list.iter_mut()
                        .for_each(berth_engine::wire::container_summary);
                }
                json(StatusCode::OK, &v)
            })
        }
        Route::ContainerInspect(id) => engine.inspect_json(&id).map(|c| json(StatusCode::OK, &c)),
        Route::ContainerStart(id) => engine
            .start(&id)
            .await
            .map(|()| no_content(StatusCode::NO_CONTENT)),
        Route::ContainerStop(id) => engine
            .stop(
                &id,
                int("t").or(int("timeout")),
                q.get("signal").map(String::as_str),
            )
            .await
            .map(|()| no_content(StatusCode::NO_CONTENT)),
        Route::ContainerRestart(id) => engine
            .restart(&id, int("t").or(int("timeout")))
            .await
            .map(|()| no_content(StatusCode::NO_CONTENT)),
        Route::ContainerKill(id) => engine
            .kill(
                &id,
                q.get("signal")
                    .map(String::as_str)
                    .filter(|s| !s.is_empty()),
            )
            .await
            .map(|()| no_content(StatusCode::NO_CONTENT)),
        Route::ContainerPause(id) => engine
            .pause(&id)
            .map(|()| no_content(StatusCode::NO_CONTENT)),
        Route::ContainerUnpause(id) => engine
            .unpause(&id)
            .map(|()| no_content(StatusCode::NO_CONTENT)),
        // `link=1`: the link named `id` goes, not a container.
        Route::ContainerDelete(id) if flag("link") => engine
            .remove_link(&id)
            .map(|()| no_content(StatusCode::NO_CONTENT)),
        Route::ContainerDelete(id) => engine
            .remove_with_volumes(&id, flag("force"), flag("v"))
            .await
            .map(|()| no_content(StatusCode::NO_CONTENT)),
        Route::ContainerUpdate(id) => {
            let body: berth_api::models::ContainerUpdateBody =
                match crate::http::read_json(req.into_body()).await {
                    Ok(b) => b,
                    Err(resp) => return resp,
                };
            engine.update(&id, &body).map(|warnings| {
                json(
                    StatusCode::OK,
                    &berth_api::models::ContainerUpdateResponse {
                        warnings: Some(warnings),
                    },
                )
            })
        }
        Route::ContainerRename(id) => {
            let name = q.get("name").cloned().unwrap_or_default();
            engine
                .rename(&id, &name)
                .map(|()| no_content(StatusCode::NO_CONTENT))
        }
        Route::ContainerResize(id) => {
            let (h, w) = (int("h").unwrap_or(0), int("w").unwrap_or(0));
            engine
                .resize(&id, h.max(0) as u32, w.max(0) as u32)
                .await
                .map(|()| response(StatusCode::OK, None, empty()))
        }
        Route::ContainerPrune => {
            let filters = match crate::http::filters(&q) {
                Ok(f) => f,
                Err(resp) => return resp,
            };
            engine.prune(&filters).await.map(|(ids, space)| {
                json(
                    StatusCode::OK,
                    &json!({"ContainersDeleted": ids, "SpaceReclaimed": space}),
                )
            })
        }
        Route::ContainerWait(id) => {
            return wait(engine, &id, q.get("condition").map(String::as_str))
        }
        Route::ContainerLogs(id) => return logs(engine, &id, &q),
        Route::ContainerAttach(id) => return attach(engine, &id, &q, req).await,
        Route::ContainerAttachWs(id) => return attach_ws(engine, &id, &q, req),
        _ => return error(StatusCode::NOT_FOUND, "page not found"),
    };
    result.unwrap_or_else(|e| engine_error(&e))
}

/// The head at once; the body `{"Error":null,"StatusCode":N}` when the condition is met.
fn wait(engine: &Engine, id: &str, condition: Option<&str>) -> Resp {
    let condition = match condition.unwrap_or("not-running") {
        "" | "not-running" => WaitCondition::NotRunning,
        "next-exit" => WaitCondition::NextExit,
        "removed" => WaitCondition::Removed,
        other => {
            return error(
                StatusCode::BAD_REQUEST,
                &format!("invalid condition: \"{other}\""),
            )
        }
    };
    if let Err(e) = engine.containers.get(id) {
        return engine_error(&e);
    }
    let (tx, body) = channel();
    let engine = engine.clone();
    let id = id.to_string();
    tokio::spawn(async move {
        // A client that goes (`docker run -d` asks for the wait, then leaves) ends the wait:
        // else each detached container would keep a task until its exit.
        let waited = tokio::select! {
            waited = engine.wait(&id, condition) => waited,
            () = tx.closed() => return,
        };
        let answer = match waited {
            Ok(code) => json!({"Error": null, "StatusCode": code}),
            Err(e) => json!({"Error": {"Message": e.to_string()}, "StatusCode": -1}),
        };
        let mut line = serde_json::to_vec(&answer).unwrap_or_default();
        line.push(b'\n');
        let _ = tx.send(Bytes::from(line)).await;
    });
    response(StatusCode::OK, Some("application/json"), body)
}

fn logs(engine: &Engine, id: &str, q: &std::collections::HashMap<String, String>) -> Resp {
    let opts = match log_options(q) {
        Ok(o) => o,
        Err(resp) => return resp,
    };
    match engine.logs(id, opts) {
        Ok((_, rx)) => response(StatusCode::OK, None, stream_body(rx)),
        Err(e) => engine_error(&e),
    }
}

/// The options of `GET /containers/{id}/logs`, or the 400 of bad ones.
#[allow(clippy::result_large_err)] // the error is the response itself, sent as it is
fn log_options(q: &std::collections::HashMap<String, String>) -> Result<LogOptions, Resp> {
    let flag = |k: &str| q.get(k).is_some_and(|v| bool_value(v));
    let time = |k: &str| -> Result<Option<i128>, Resp> {
        match q.get(k).map(String::as_str) {
            None | Some("") => Ok(None),
            Some(v) => match berth_engine::logs::parse_unix(v) {
                Some(0) => Ok(None),
                Some(t) => Ok(Some(t)),
                None => Err(error(
                    StatusCode::BAD_REQUEST,
                    &format!("invalid value for \"{k}\": {v}"),
                )),
            },
        }
    };
    let since = time("since")?;
    let until = time("until")?;
    let opts = LogOptions {
        stdout: flag("stdout"),
        stderr: flag("stderr"),
        follow: flag("follow"),
        since,
        until,
        tail: q
            .get("tail")
            .filter(|t| t.as_str() != "all")
            .and_then(|t| t.parse().ok()),
        timestamps: flag("timestamps"),
    };
    if !opts.stdout && !opts.stderr {
        return Err(error(
            StatusCode::BAD_REQUEST,
            "Bad parameters: you must choose at least one stream",
        ));
    }
    Ok(opts)
}

/// Hijacks the connection (101) and joins it to the container's stream.
async fn attach(
    engine: &Engine,
    id: &str,
    q: &std::collections::HashMap<String, String>,
    mut req: Req,
) -> Resp {
    let flag = |k: &str| q.get(k).is_some_and(|v| bool_value(v));
    let opts = AttachOptions {
        stdin: flag("stdin"),
        stdout: flag("stdout"),
        stderr: flag("stderr"),
    };
    let detach = opts
        .stdin
        .then(|| detach_keys(q.get("detachKeys").map(String::as_str)));
    // `stream=0` only when given: clients that leave it out get the live stream, as always.
    let stream = q.get("stream").is_none_or(|v| bool_value(v));
    if flag("logs") || !stream {
        return attach_logs(engine, id, opts, flag("logs"), stream, detach, req);
    }
    let (tty, attached) = match engine.attach(id, opts).await {
        Ok(x) => x,
        Err(e) => return engine_error(&e),
    };
    let conn = req.extensions().get::<crate::hijack::Connection>().copied();
    let upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        let Ok(upgraded) = upgrade.await else { return };
        crate::hijack::until_client_read(conn).await;
        let monitor = match attached {
            Attached::Now(s) => s,
            Attached::AtStart(rx) => match rx.await {
                Ok(s) => s,
                Err(_) => return,
            },
        };
        pump(TokioIo::new(upgraded), monitor, detach, tty).await;
    });
    upgraded_response()
}

/// An attach with `logs=1` (the log so far first, from the same reader as `GET .../logs`)
/// or `stream=0` (no live output), as dockerd: the log is sent, then the live stream attached,
/// so output written in between is in neither.
fn attach_logs(
    engine: &Engine,
    id: &str,
    opts: AttachOptions,
    logs: bool,
    stream: bool,
    detach: Option<Vec<u8>>,
    mut req: Req,
) -> Resp {
    let tty = match engine.containers.get(id) {
        Ok(c) => c.tty(),
        Err(e) => return engine_error(&e),
    };
    let log = match attach_log(engine, id, opts, logs) {
        Ok(log) => log,
        Err(e) => return engine_error(&e),
    };
    let conn = req.extensions().get::<crate::hijack::Connection>().copied();
    let upgrade = hyper::upgrade::on(&mut req);
    let engine = engine.clone();
    let id = id.to_string();
    tokio::spawn(async move {
        let Ok(upgraded) = upgrade.await else { return };
        crate::hijack::until_client_read(conn).await;
        let mut client = TokioIo::new(upgraded);
        if let Some(mut rx) = log {
            while let Some(chunk) = rx.recv().await {
                if client.write_all(&chunk).await.is_err() {
                    return;
                }
            }
        }
        if !stream {
            let _ = client.shutdown().await;
            return;
        }
        let monitor = match engine.attach(&id, opts).await {
            Ok((_, Attached::Now(s))) => s,
            Ok((_, Attached::AtStart(rx))) => match rx.await {
                Ok(s) => s,
                Err(_) => return,
            },
            Err(e) => {
                tracing::debug!(container = %id, error = %e, "attach after the log");
                let _ = client.shutdown().await;
                return;
            }
        };
        pump(client, monitor, detach, tty).await;
    });
    upgraded_response()
}

/// The log so far of an attach with `logs=1` (the streams it attaches), read as `GET .../logs`
/// reads it; `None` without `logs`.
fn attach_log(
    engine: &Engine,
    id: &str,
    opts: AttachOptions,
    logs: bool,
) -> berth_engine::Result<Option<tokio::sync::mpsc::Receiver<Vec<u8>>>> {
    if !logs {
        return Ok(None);
    }
    let o = LogOptions {
        stdout: opts.stdout,
        stderr: opts.stderr,
        ..LogOptions::default()
    };
    engine.logs(id, o).map(|(_, rx)| Some(rx))
}

/// `GET /containers/{id}/attach/ws`: the attach over a WebSocket, as dockerd has it: `logs`
/// and `stream` off unless asked, the output raw (no stdcopy frames) in binary frames.
fn attach_ws(
    engine: &Engine,
    id: &str,
    q: &std::collections::HashMap<String, String>,
    mut req: Req,
) -> Resp {
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_ascii_lowercase()
    };
    let key = req
        .headers()
        .get("Sec-WebSocket-Key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let (Some(key), true) = (
        key,
        header("Upgrade") == "websocket" && header("Connection").contains("upgrade"),
    ) else {
        return error(
            StatusCode::BAD_REQUEST,
            "websocket: the client is not using the websocket protocol",
        );
    };
    let tty = match engine.containers.get(id) {
        Ok(c) => c.tty(),
        Err(e) => return engine_error(&e),
    };
    let flag = |k: &str| q.get(k).is_some_and(|v| bool_value(v));
    let opts = AttachOptions {
        stdin: flag("stdin"),
        stdout: flag("stdout"),
        stderr: flag("stderr"),
    };
    let (logs, stream) = (flag("logs"), flag("stream"));
    let detach = opts
        .stdin
        .then(|| detach_keys(q.get("detachKeys").map(String::as_str)));
    let log = match attach_log(engine, id, opts, logs) {
        Ok(log) => log,
        Err(e) => return engine_error(&e),
    };
    let upgrade = hyper::upgrade::on(&mut req);
    let engine = engine.clone();
    let id = id.to_string();
    tokio::spawn(async move {
        let Ok(upgraded) = upgrade.await else { return };
        let (mut local, ours) = tokio::io::duplex(64 << 10);
        let bridge = tokio::spawn(berth_daemon::websocket::bridge(
            TokioIo::new(upgraded),
            ours,
        ));
        if let Some(mut rx) = log {
            let mut raw = Deframer::new(!tty);
            while let Some(chunk) = rx.recv().await {
                if local.write_all(&raw.feed(&chunk)).await.is_err() {
                    return;
                }
            }
        }
        let monitor = match stream {
            true => match engine.attach(&id, opts).await {
                Ok((_, Attached::Now(s))) => Some(s),
                Ok((_, Attached::AtStart(rx))) => rx.await.ok(),
                Err(e) => {
                    tracing::debug!(container = %id, error = %e, "websocket attach");
                    None
                }
            },
            false => None,
        };
        match monitor {
            Some(monitor) => {
                let framing = if tty { Framing::AsIs } else { Framing::Unframe };
                pump_framed(local, monitor, detach, tty, framing).await;
            }
            None => {
                let _ = local.shutdown().await;
                drop(local);
            }
        }
        let _ = bridge.await;
    });
    let mut resp = response(StatusCode::SWITCHING_PROTOCOLS, None, empty());
    let h = resp.headers_mut();
    h.insert("Connection", HeaderValue::from_static("Upgrade"));
    h.insert("Upgrade", HeaderValue::from_static("websocket"));
    if let Ok(v) = HeaderValue::from_str(&berth_daemon::websocket::accept_key(&key)) {
        h.insert("Sec-WebSocket-Accept", v);
    }
    resp
}

/// Stdcopy frames to raw bytes, chunk by chunk (a frame may span chunks); with `framed` off,
/// bytes pass as they are.
struct Deframer {
    framed: bool,
    buf: Vec<u8>,
}

impl Deframer {
    fn new(framed: bool) -> Deframer {
        Deframer {
            framed,
            buf: Vec::new(),
        }
    }

    fn feed(&mut self, chunk: &[u8]) -> Vec<u8> {
        if !self.framed {
            return chunk.to_vec();
        }
        self.buf.extend_from_slice(chunk);
        let mut out = Vec::new();
        let mut at = 0;
        while let Some(header) = self.buf.get(at..at + 8) {
            let size = u32::from_be_bytes([header[4], header[5], header[6], header[7]]) as usize;
            let Some(payload) = self.buf.get(at + 8..at + 8 + size) else {
                break;
            };
            out.extend_from_slice(payload);
            at += 8 + size;
        }
        self.buf.drain(..at);
        out
    }
}

/// The 101 answer of a hijack: only these headers, as dockerd sends.
pub fn upgraded_response() -> Resp {
    let mut resp = response(
        StatusCode::SWITCHING_PROTOCOLS,
        Some("application/vnd.docker.raw-stream"),
        empty(),
    );
    let h = resp.headers_mut();
    h.insert("Connection", HeaderValue::from_static("Upgrade"));
    h.insert("Upgrade", HeaderValue::from_static("tcp"));
    resp
}

/// Docker's detach keys (`ctrl-p,ctrl-q`, `ctrl-a`, `a`...) as bytes.
pub fn detach_keys(spec: Option<&str>) -> Vec<u8> {
    let spec = spec.filter(|s| !s.is_empty()).unwrap_or("ctrl-p,ctrl-q");
    spec.split(',')
        .filter_map(|k| match k.strip_prefix("ctrl-") {
            Some(c) if c.len() == 1 => {
                let b = c.as_bytes()[0].to_ascii_lowercase();
                match b {
                    b'a'..=b'z' => Some(b - b'a' + 1),
                    b'@' => Some(0),
                    b'[' => Some(27),
                    b'\\' => Some(28),
                    b']' => Some(29),
                    b'^' => Some(30),
                    b'_' => Some(31),
                    _ => None,
                }
            }
            None if k.len() == 1 => Some(k.as_bytes()[0]),
            _ => None,
        })
        .collect()
}

/// Copies the client's bytes to the monitor (its half-close ends stdin) and the monitor's to
/// the client, until the monitor ends the stream (the process exited, output flushed). With
/// `detach`, that key sequence in the input detaches the client: its connection closes, while
/// the container's stdin stays open (the monitor connection is kept, its output drained).
///
/// With a tty, the client's end of input ends the attach but leaves the container's stdin
/// open, as dockerd does (closing a terminal's input would end the shell behind it).
pub async fn pump<C>(client: C, monitor: MonitorStream, detach: Option<Vec<u8>>, tty: bool)
where
    C: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + 'static,
{
    pump_framed(client, monitor, detach, tty, Framing::AsIs).await;
}

/// How the monitor's output reaches the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// As the monitor sends it (frames without a tty, raw bytes with one).
    AsIs,
    /// Raw bytes (a tty) sent as stdout frames: an exec with a tty started without one.
    Frame,
    /// Frames sent as raw bytes: an exec without a tty started with one.
    Unframe,
}

impl Framing {
    /// dockerd frames an exec's output by the start's `Tty`, whatever the exec's.
    pub fn for_exec(exec_tty: bool, start_tty: bool) -> Framing {
        match (exec_tty, start_tty) {
            (true, false) => Framing::Frame,
            (false, true) => Framing::Unframe,
            _ => Framing::AsIs,
        }
    }
}

/// Copies the monitor's output to the client, reframed as `framing` says.
async fn copy_output<R, W>(mut from: R, mut to: W, framing: Framing) -> std::io::Result<()>
where
    R: tokio::io::AsyncRead + Unpin,
    W: tokio::io::AsyncWrite + Unpin,
{
    use tokio::io::AsyncReadExt;
    match framing {
        Framing::AsIs => {
            tokio::io::copy(&mut from, &mut to).await?;
        }
        Framing::Frame => {
            let mut buf = vec![0u8; 32 << 10];
            loop {
                let n = from.read(&mut buf).await?;
                if n == 0 {
                    break;
                }
                let header = berth_api::stdcopy::header(berth_api::stdcopy::Stream::Stdout, n);
                to.write_all(&header).await?;
                to.write_all(&buf[..n]).await?;
            }
        }
        Framing::Unframe => loop {
            let mut header = [0u8; 8];
            match from.read_exact(&mut header).await {
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
                Err(e) => return Err(e),
            }
            let size = u32::from_be_bytes([header[4], header[5], header[6], header[7]]);
            let mut payload = (&mut from).take(u64::from(size));
            tokio::io::copy(&mut payload, &mut to).await?;
        },
    }
    to.flush().await
}

/// [`pump`], with the output reframed as `framing` says.
pub async fn pump_framed<C>(
    client: C,
    monitor: MonitorStream,
    detach: Option<Vec<u8>>,
    tty: bool,
    framing: Framing,
) where
    C: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + 'static,
{
    use tokio::io::AsyncReadExt;
    let (mut cr, mut cw) = tokio::io::split(client);
    let (mut mr, mut mw) = tokio::io::split(monitor);
    let mut input = tokio::spawn(async move {
        let keys = detach.filter(|k| !k.is_empty());
        let mut buf = vec![0u8; 16 << 10];
        let mut matched = 0usize;
        loop {
            let n = match cr.read(&mut buf).await {
                Ok(0) | Err(_) if tty => return Some(mw),
                Ok(0) | Err(_) => {
                    let _ = mw.shutdown().await;
                    return None;
                }
                Ok(n) => n,
            };
            let Some(keys) = &keys else {
                if mw.write_all(&buf[..n]).await.is_err() {
                    return None;
                }
                continue;
            };
            let mut out = Vec::with_capacity(n);
            for &b in &buf[..n] {
                if b == keys[matched] {
                    matched += 1;
                    if matched == keys.len() {
                        let _ = mw.write_all(&out).await;
                        return Some(mw);
                    }
                    continue;
                }
                out.extend_from_slice(&keys[..matched]);
                matched = 0;
                if b == keys[0] {
                    matched = 1;
                } else {
                    out.push(b);
                }
            }
            if mw.write_all(&out).await.is_err() {
                return None;
            }
        }
    });
    let mut input_done = false;
    let detached = {
        let output = copy_output(&mut mr, &mut cw, framing);
        tokio::pin!(output);
        loop {
            tokio::select! {
                _ = &mut output => break None,
                r = &mut input, if !input_done => match r {
                    Ok(Some(mw)) => break Some(mw),
                    // The client's half-close ends stdin, not the output.
                    _ => input_done = true,
                },
            }
        }
    };
    let _ = cw.shutdown().await;
    match detached {
        Some(mw) => {
            // Keep the container's stdin open and its output flowing until it exits.
            let _ = tokio::io::copy(&mut mr, &mut tokio::io::sink()).await;
            drop(mw);
        }
        None => input.abort(),
    }
}

#[cfg(test)]
mod tests {
    use super::Deframer;

    #[test]
    fn frames_split_across_chunks_come_out_whole() {
        let mut framed = berth_api::stdcopy::header(berth_api::stdcopy::Stream::Stdout, 5).to_vec();
        framed.extend_from_slice(b"hello");
        framed.extend_from_slice(&berth_api::stdcopy::header(
            berth_api::stdcopy::Stream::Stderr,
            3,
        ));
        framed.extend_from_slice(b"err");
        let mut d = Deframer::new(true);
        let mut out = Vec::new();
        for chunk in framed.chunks(3) {
            out.extend(d.feed(chunk));
        }
        assert_eq!(out, b"helloerr");
        assert_eq!(Deframer::new(false).feed(b"raw"), b"raw");
    }
}
