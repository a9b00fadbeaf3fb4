//! Container files and figures: `top`, `stats`, `export`, the archive endpoints of `docker cp`
//! and `commit`.

use berth_engine::Engine;
use http::{Request, StatusCode};
use hyper::body::Incoming;

use crate::http::{error, Resp};
use crate::route::Route;

pub async fn handle(_engine: &Engine, _route: Route, _req: Request<Incoming>) -> Resp {
    error(StatusCode::NOT_IMPLEMENTED, "not implemented yet in berthd")
}
