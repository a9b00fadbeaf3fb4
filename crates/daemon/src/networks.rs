//! `/networks/...`: list, inspect, create, remove, connect, disconnect, prune.

use berth_api::models::{NetworkConnectRequest, NetworkCreateRequest, NetworkDisconnectRequest};
use berth_engine::Engine;
use http::StatusCode;
use serde_json::json;

use crate::http::{empty, engine_error, error, json, no_content, read_json, response, Req, Resp};
use crate::route::{self, Route};

pub async fn handle(engine: &Engine, route: Route, req: Req) -> Resp {
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
        Route::NetworkPrune => engine
            .network_prune(&filters)
            .await
            .map(|names| json(StatusCode::OK, &json!({ "NetworksDeleted": names }))),
        _ => return error(StatusCode::NOT_FOUND, "page not found"),
    };
    result.unwrap_or_else(|e| engine_error(&e))
}
