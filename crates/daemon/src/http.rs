//! The HTTP pieces every handler uses: the response body type (whole or streamed), JSON and
//! error responses with Docker's headers, reading request bodies within their limits.

use std::convert::Infallible;

use berth_api::query::Filters;
use berth_daemon::body::BodyLimit;
use bytes::{Bytes, BytesMut};
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Body as _, Frame, Incoming};
use serde::Serialize;
use tokio::sync::mpsc;

/// Every response body: whole, or a stream of chunks.
pub type Body = BoxBody<Bytes, Infallible>;

pub type Resp = Response<Body>;

pub fn full(data: impl Into<Bytes>) -> Body {
    Full::new(data.into()).boxed()
}

pub fn empty() -> Body {
    full(Bytes::new())
}

/// A streamed body fed by the returned sender; each message is flushed as one chunk. The
/// response head goes out at once, before any chunk (as `wait` needs).
pub fn channel() -> (mpsc::Sender<Bytes>, Body) {
    let (tx, rx) = mpsc::channel::<Bytes>(64);
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|b| (Ok::<_, Infallible>(Frame::data(b)), rx))
    });
    (tx, BodyExt::boxed(StreamBody::new(stream)))
}

/// A streamed body of the chunks `rx` gives, each taken only when the connection has sent the
/// one before: a slow client holds the producer back instead of making the daemon buffer.
pub fn stream_body(rx: mpsc::Receiver<Vec<u8>>) -> Body {
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|b| (Ok::<_, Infallible>(Frame::data(Bytes::from(b))), rx))
    });
    BodyExt::boxed(StreamBody::new(stream))
}

/// A response with `status` and `body`.
pub fn response(status: StatusCode, content_type: Option<&str>, body: Body) -> Resp {
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    if let Some(ct) = content_type {
        if let Ok(v) = HeaderValue::from_str(ct) {
            resp.headers_mut().insert(http::header::CONTENT_TYPE, v);
        }
    }
    resp
}

/// `value` as JSON with `status`.
pub fn json(status: StatusCode, value: &impl Serialize) -> Resp {
    match serde_json::to_vec(value) {
        Ok(mut bytes) => {
            bytes.push(b'\n');
            response(status, Some("application/json"), full(bytes))
        }
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

/// Docker's error body: `{"message": "..."}`.
pub fn error(status: StatusCode, message: &str) -> Resp {
    let mut bytes = serde_json::to_vec(&serde_json::json!({ "message": message }))
        .unwrap_or_else(|_| b"{}".to_vec());
    bytes.push(b'\n');
    response(status, Some("application/json"), full(bytes))
}

/// The request's `filters` query parameter (either of Docker's encodings), or a 400 for it.
#[allow(clippy::result_large_err)] // the error is the response itself, sent as it is
pub fn filters(query: &std::collections::HashMap<String, String>) -> Result<Filters, Resp> {
    Filters::parse(query.get("filters").map_or("", String::as_str))
        .map_err(|e| error(StatusCode::BAD_REQUEST, &e.to_string()))
}

/// A status with no body (204, 304, 201 for tag).
pub fn no_content(status: StatusCode) -> Resp {
    response(status, None, empty())
}

/// The engine's error as Docker answers it.
pub fn engine_error(e: &berth_engine::EngineError) -> Resp {
    let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if status == StatusCode::NOT_MODIFIED {
        return no_content(status);
    }
    if status.is_server_error() {
        // The whole chain of causes goes to the log; the client gets dockerd's one line.
        let mut causes = Vec::new();
        let mut source = std::error::Error::source(e);
        while let Some(s) = source {
            causes.push(s.to_string());
            source = s.source();
        }
        tracing::warn!(error = %e, causes = ?causes, "request failed");
    }
    error(status, &e.to_string())
}

/// A request as the handlers get it: its body with what its route allows.
pub type Req = Request<ReqBody>;

/// A request body and its route's [`BodyLimit`]. A route that takes none never holds it:
/// hyper drains what already arrived, or closes the connection.
#[derive(Debug)]
pub struct ReqBody {
    inner: Option<Incoming>,
    limit: BodyLimit,
}

impl ReqBody {
    pub fn new(inner: Incoming, limit: BodyLimit) -> ReqBody {
        let inner = (limit != BodyLimit::Ignored).then_some(inner);
        ReqBody { inner, limit }
    }

    /// The body as it arrives, for the routes that stream it (none for the others).
    pub fn into_stream(self) -> Option<Incoming> {
        self.inner
    }
}

/// The 413 answer to a body over `limit` bytes; the connection is closed after it, since the
/// rest of the body is not read.
pub fn too_large(limit: u64) -> Resp {
    let mut resp = error(
        StatusCode::PAYLOAD_TOO_LARGE,
        &berth_daemon::body::too_large(limit),
    );
    resp.headers_mut()
        .insert(http::header::CONNECTION, HeaderValue::from_static("close"));
    resp
}

/// Reads a whole JSON body, at most its route's limit: more is a 413, sent without reading
/// the rest.
async fn read_limited(body: ReqBody) -> Result<Bytes, Resp> {
    let limit = match body.limit {
        BodyLimit::Json(n) => n,
        BodyLimit::Ignored | BodyLimit::Stream => berth_daemon::body::JSON_MAX,
    };
    let Some(mut inner) = body.inner else {
        return Ok(Bytes::new());
    };
    if inner.size_hint().lower() > limit as u64 {
        return Err(too_large(limit as u64));
    }
    let mut buf = BytesMut::new();
    while let Some(frame) = inner.frame().await {
        let frame = frame.map_err(|e| {
            error(
                StatusCode::BAD_REQUEST,
                &format!("reading the request body: {e}"),
            )
        })?;
        if let Ok(data) = frame.into_data() {
            if buf.len() + data.len() > limit {
                return Err(too_large(limit as u64));
            }
            buf.extend_from_slice(&data);
        }
    }
    Ok(buf.freeze())
}

/// Parses a JSON request body (an empty body is the type's default); a body that does not
/// decode is a 400 `invalid JSON: ...`.
pub async fn read_json<T: serde::de::DeserializeOwned + Default>(body: ReqBody) -> Result<T, Resp> {
    let bytes = read_limited(body).await?;
    berth_daemon::body::decode_json(&bytes).map_err(|m| error(StatusCode::BAD_REQUEST, &m))
}

/// Parses a JSON request body into a JSON value first (`None` for an empty body), for the
/// routes that look at it before it is decoded into its type (with [`decode_value`]).
pub async fn read_json_value(body: ReqBody) -> Result<Option<serde_json::Value>, Resp> {
    let bytes = read_limited(body).await?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    berth_daemon::body::decode_json(&bytes)
        .map(Some)
        .map_err(|m| error(StatusCode::BAD_REQUEST, &m))
}

/// The type of a body read by [`read_json_value`] (its default for an empty body), or the
/// 400 answer's message.
pub fn decode_value<T: serde::de::DeserializeOwned + Default>(
    value: Option<serde_json::Value>,
) -> Result<T, String> {
    let Some(value) = value else {
        return Ok(T::default());
    };
    serde_json::from_value(value).map_err(|e| format!("invalid JSON: {e}"))
}
