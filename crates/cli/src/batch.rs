//! Commands that act on several names with one request each, as docker's do (`stop a b`,
//! `rm -f a b`, `network rm n m`): each name that succeeds is printed, each error is reported,
//! and the command exits 1 if any failed.

use anyhow::Result;
use berth_api::client::Client;
use hyper::Method;

use crate::status;

/// Calls `request(name)` (method, path, query) for every name in turn. With `missing_ok`, a
/// name that does not exist is neither printed nor an error (`rm -f`).
pub async fn each(
    client: &Client,
    names: &[String],
    missing_ok: bool,
    request: impl Fn(&str) -> (Method, String, String),
) -> Result<i32> {
    let mut failed = false;
    for name in names {
        let (method, path, query) = request(name);
        match client.call(method, &path, &query).await {
            Ok(()) => println!("{name}"),
            Err(e) if missing_ok && e.is_not_found() => {}
            Err(e) => {
                eprintln!("{e}");
                failed = true;
            }
        }
    }
    if failed {
        return Err(status(1, None));
    }
    Ok(0)
}
