//! `/volumes/...`: list, inspect, create, remove, prune.

use berth_api::models::VolumeCreateRequest;
use berth_api::query::bool_value;
use berth_engine::Engine;
use http::StatusCode;
use serde_json::json;

use crate::http::{engine_error, error, json, no_content, read_json, Req, Resp};
use crate::route::{self, Route};

pub async fn handle(engine: &Engine, route: Route, req: Req) -> Resp {
    let q = route::query(req.uri().query());
    let filters = match crate::http::filters(&q) {
        Ok(f) => f,
        Err(resp) => return resp,
    };
    let result = match route {
        Route::VolumeList => engine
            .volume_list(&filters)
            .await
            .map(|l| json(StatusCode::OK, &l)),
        Route::VolumeInspect(name) => engine
            .volume_inspect(&name)
            .await
            .map(|v| json(StatusCode::OK, &v)),
        Route::VolumeCreate => {
            let body: VolumeCreateRequest = match read_json(req.into_body()).await {
                Ok(b) => b,
                Err(resp) => return resp,
            };
            engine
                .volume_create(body)
                .await
                .map(|v| json(StatusCode::CREATED, &v))
        }
        Route::VolumeDelete(name) => {
            let force = q.get("force").is_some_and(|f| bool_value(f));
            engine
                .volume_remove(&name, force)
                .await
                .map(|()| no_content(StatusCode::NO_CONTENT))
        }
        Route::VolumePrune => engine.prune_volumes(&filters).map(|(names, space)| {
            json(
                StatusCode::OK,
                &json!({"VolumesDeleted": names, "SpaceReclaimed": space}),
            )
        }),
        _ => return error(StatusCode::NOT_FOUND, "page not found"),
    };
    result.unwrap_or_else(|e| engine_error(&e))
}
