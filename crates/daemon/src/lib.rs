//! What berthd does with a request before the engine sees it, as a library: the request line
//! parsed into a [`route::Route`] with its query, and the bodies' limits and JSON decoding
//! ([`body`]), and the WebSocket framing of `attach/ws` ([`websocket`]). The `berthd` binary serves with it; the fuzz targets (`crates/fuzzing`) call the
//! same functions on arbitrary bytes.

pub mod body;
pub mod route;
pub mod websocket;
