//! Request bodies: how much of one each route takes, and how the JSON ones decode.
//!
//! A body is never read whole unless the route decodes it, and then only up to the route's
//! limit: a declared `Content-Length` above it is refused before a byte of the body is read,
//! and a chunked body is refused as soon as it passes it. Archives and tarballs (`load`,
//! `import`, `PUT .../archive`) are streamed to the engine as they come.

use crate::route::Route;

/// What a route does with a request body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyLimit {
    /// The route takes no body: it is never read. A declared length above [`IGNORED_MAX`] is
    /// refused; a smaller body is left to hyper, which drains what has already arrived or
    /// closes the connection (dockerd ignores such bodies; clients send `{}` at times).
    Ignored,
    /// Read whole, up to this many bytes, and decoded as JSON.
    Json(usize),
    /// Streamed to the engine as it arrives: archives, tarballs, build contexts.
    Stream,
}

/// The largest body of `POST /containers/create` and `POST /containers/{id}/exec`. The
/// kernel limits a process's arguments and environment together to a quarter of its stack
/// limit (2 MiB with the usual 8 MiB stack), so a real body is far smaller; the limit bounds
/// what a hostile one costs (decoding multiplies the size by up to 16, with a string per
/// 3 bytes of `"",`).
pub const CREATE_MAX: usize = 8 << 20;
/// The largest body of the other JSON routes (networks, volumes, exec start, auth).
pub const JSON_MAX: usize = 1 << 20;
/// The largest declared body a route that takes none lets through unread.
pub const IGNORED_MAX: u64 = 64 << 10;

/// How `route` treats a request body.
pub fn limit(route: &Route) -> BodyLimit {
    use Route::*;
    match route {
        ContainerCreate | ExecCreate(_) => BodyLimit::Json(CREATE_MAX),
        ExecStart(_) | ContainerUpdate(_) | NetworkCreate | NetworkConnect(_)
        | NetworkDisconnect(_) | VolumeCreate | Auth => BodyLimit::Json(JSON_MAX),
        // `import` (`fromSrc=-`) streams its tarball; a pull never reads the body.
        ImageCreate | ImageLoad | ContainerArchive(_) | Build => BodyLimit::Stream,
        _ => BodyLimit::Ignored,
    }
}

/// The message of the 413 answer to a body over `limit` bytes.
pub fn too_large(limit: u64) -> String {
    format!("request body too large: this route takes at most {limit} bytes")
}

/// Decodes a whole JSON body; an empty (or blank) body is the type's default. The error is
/// the message of dockerd's 400 answer (`invalid JSON: ...`, Go's words where they are easy
/// to tell).
pub fn decode_json<T: serde::de::DeserializeOwned + Default>(bytes: &[u8]) -> Result<T, String> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    // dockerd (since 18.09 for most routes, 25 for create) answers a body it cannot decode
    // with 400 and `invalid JSON: ...`; dockerd 20.10 answered create with 500.
    serde_json::from_slice(bytes)
        .map_err(|e| format!("invalid JSON: {}", json_error_text(bytes, &e)))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_errors_read_as_dockerds() {
        let e = decode_json::<serde_json::Value>(b"x").unwrap_err();
        assert_eq!(
            e,
            "invalid JSON: invalid character 'x' looking for beginning of value"
        );
        let e = decode_json::<serde_json::Value>(b"{").unwrap_err();
        assert_eq!(e, "invalid JSON: unexpected end of JSON input");
        assert_eq!(
            decode_json::<serde_json::Value>(b" \n").unwrap(),
            serde_json::Value::Null
        );
    }

    #[test]
    fn only_json_routes_read_bodies_whole() {
        assert_eq!(limit(&Route::ContainerCreate), BodyLimit::Json(CREATE_MAX));
        assert_eq!(limit(&Route::VolumeCreate), BodyLimit::Json(JSON_MAX));
        assert_eq!(limit(&Route::ImageLoad), BodyLimit::Stream);
        assert_eq!(limit(&Route::ContainerList), BodyLimit::Ignored);
        assert_eq!(
            limit(&Route::ContainerStart("x".into())),
            BodyLimit::Ignored
        );
    }
}
