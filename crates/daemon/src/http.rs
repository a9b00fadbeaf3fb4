//! The HTTP pieces every handler uses: the response body type (whole or streamed), JSON and
//! error responses with Docker's headers, reading request bodies.

use std::convert::Infallible;

use berth_api::query::Filters;
use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
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
    error(status, &e.to_string())
}

/// Reads a whole request body.
pub async fn read_body(body: Incoming) -> Result<Bytes, Resp> {
    body.collect().await.map(|c| c.to_bytes()).map_err(|e| {
        error(
            StatusCode::BAD_REQUEST,
            &format!("reading the request body: {e}"),
        )
    })
}

/// Parses a JSON request body (an empty body is the type's default).
pub async fn read_json<T: serde::de::DeserializeOwned + Default>(
    body: Incoming,
) -> Result<T, Resp> {
    let bytes = read_body(body).await?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    // dockerd (since 18.09 for most routes, 25 for create) answers a body it cannot decode
    // with 400 and `invalid JSON: ...`; dockerd 20.10 answered create with 500.
    serde_json::from_slice(&bytes).map_err(|e| {
        error(
            StatusCode::BAD_REQUEST,
            &format!("invalid JSON: {}", json_error_text(&bytes, &e)),
        )
    })
}

/// Parses a JSON request body into a JSON value first (`None` for an empty body), for the
/// routes that look at it before it is decoded into its type (with [`decode_json`]).
pub async fn read_json_value(body: Incoming) -> Result<Option<serde_json::Value>, Resp> {
    let bytes = read_body(body).await?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    serde_json::from_slice(&bytes).map(Some).map_err(|e| {
        error(
            StatusCode::BAD_REQUEST,
            &format!("invalid JSON: {}", json_error_text(&bytes, &e)),
        )
    })
}

/// The type of a body read by [`read_json_value`] (its default for an empty body), or the
/// 400 answer's message.
pub fn decode_json<T: serde::de::DeserializeOwned + Default>(
    value: Option<serde_json::Value>,
) -> Result<T, String> {
    let Some(value) = value else {
        return Ok(T::default());
    };
    serde_json::from_value(value).map_err(|e| format!("invalid JSON: {e}"))
}

/// A decoding error in Go's words where they are easy to tell (`invalid character 'x' looking
/// for beginning of value`, `unexpected end of JSON input`), else serde's.
fn json_error_text(bytes: &[u8], e: &serde_json::Error) -> String {
    if e.is_eof() {
        return "unexpected end of JSON input".to_string();
    }
    if e.is_syntax() && e.to_string().starts_with("expected value") {
        let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
        if let Some(&c) = first.filter(|c| !b"{[\"-0123456789tfn".contains(c)) {
            return format!(
                "invalid character {:?} looking for beginning of value",
                char::from(c)
            );
        }
    }
    e.to_string()
}
