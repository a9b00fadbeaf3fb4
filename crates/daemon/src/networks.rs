//! `/networks/...`: list, inspect, create, remove, connect, disconnect, prune.

use berth_api::models::{NetworkConnectRequest, NetworkCreateRequest, NetworkDisconnectRequest};
use berth_engine::Engine;
use http::StatusCode;
use serde_json::json;

use crate::http::{empty, engine_error, error, json, no_content, read_json, response, Req, Resp};
use crate::route::{self, Route};

pub async fn handle(engine: &Engine, route: Route, req: Req) -> Resp {
    // A network's name may hold any character (`test 01`): clients escape the path segment.
    let route = match route {
        Route::NetworkInspect(id) => Route::NetworkInspect(unescape(&id)),
        Route::NetworkDelete(id) => Route::NetworkDelete(unescape(&id)),
        Route::NetworkConnect(id) => Route::NetworkConnect(unescape(&id)),
        Route::NetworkDisconnect(id) => Route::NetworkDisconnect(unescape(&id)),
        other => other,
    };
    let q = route::query(req.uri().query());
    let filters = match crate::http::filters(&q) {
        Ok(f) => f,
        Err(resp) => return resp,
    };
    let result = match route {
        Route::NetworkList => engine
            .network_list(&filters)
            .await
            .map(|l| json(StatusCode::OK, &l)),
        Route::NetworkInspect(id) => engine
            .network_inspect(&id)
            .await
            .map(|n| json(StatusCode::OK, &n)),
        Route::NetworkCreate => {
            let body: NetworkCreateRequest = match read_json(req.into_body()).await {
                Ok(b) => b,
                Err(resp) => return resp,
            };
            engine
                .network_create(body)
                .await
                .map(|id| json(StatusCode::CREATED, &json!({"Id": id, "Warning": ""})))
        }
        Route::NetworkDelete(id) => engine
            .network_remove(&id)
            .await
            .map(|()| no_content(StatusCode::NO_CONTENT)),
        Route::NetworkConnect(id) => {
            let body: NetworkConnectRequest = match read_json(req.into_body()).await {
                Ok(b) => b,
                Err(resp) => return resp,
            };
            engine
                .network_connect(&id, &body.container, body.endpoint_config)
                .await
                .map(|()| response(StatusCode::OK, None, empty()))
        }
        Route::NetworkDisconnect(id) => {
            let body: NetworkDisconnectRequest = match read_json(req.into_body()).await {
                Ok(b) => b,
                Err(resp) => return resp,
            };
            engine
                .network_disconnect(&id, &body.container, body.force.unwrap_or(false))
                .await
                .map(|()| response(StatusCode::OK, None, empty()))
        }
        Route::NetworkPrune => engine.network_prune(&filters).await.map(|names| {
            // dockerd's one `prune` event, no actor, no attributes.
            engine.events.publish(
                berth_api::models::EventMessageTypeEnum::NETWORK,
                "prune",
                "",
                Default::default(),
            );
            json(StatusCode::OK, &json!({ "NetworksDeleted": names }))
        }),
        _ => return error(StatusCode::NOT_FOUND, "page not found"),
    };
    result.unwrap_or_else(|e| engine_error(&e))
}

/// A path segment with its `%XX` escapes decoded (a `%` without two hex digits stays; bytes
/// that do not make UTF-8 become U+FFFD).
fn unescape(segment: &str) -> String {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: Option<&u8>| b.and_then(|b| char::from(*b).to_digit(16));
        match (bytes[i], hex(bytes.get(i + 1)), hex(bytes.get(i + 2))) {
            (b'%', Some(hi), Some(lo)) => {
                out.push(u8::try_from(hi * 16 + lo).unwrap_or(b'?'));
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    #[test]
    fn path_segments_are_unescaped() {
        assert_eq!(super::unescape("test%2001"), "test 01");
        assert_eq!(super::unescape("a%2Fb%"), "a/b%");
        assert_eq!(super::unescape("%zz%4"), "%zz%4");
        assert_eq!(super::unescape("%ff"), "\u{fffd}");
    }
}
