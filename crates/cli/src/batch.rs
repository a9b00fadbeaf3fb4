//! Commands that act on several names with one request each, as docker's do (`stop a b`,
//! `rm -f a b`, `network rm n m`): each name that succeeds is printed, each error is reported,
//! and the command exits 1 if any failed; and `inspect` of several objects of one kind.

use anyhow::Result;
use berth_api::client::{empty_body, read_all, Client};
use hyper::Method;
use serde::Serialize;
use serde_json::Value;

use crate::{formatter, status};

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

/// `KIND inspect [-f FORMAT] NAME...` (`GET {path}/NAME` each): the objects found as a JSON
/// array indented as the docker CLI does, or each through the template; then the errors of
/// the others, and exit 1 if there were any.
pub async fn inspect(
    client: &Client,
    path: &str,
    names: &[String],
    format: Option<&str>,
) -> Result<i32> {
    let mut found: Vec<Vec<u8>> = Vec::new();
    let mut errors = Vec::new();
    for name in names {
        let got = match client
            .request(
                Method::GET,
                &format!("{path}/{name}"),
                "",
                &[],
                empty_body(),
            )
            .await
        {
            Ok(resp) => read_all(resp).await.map(|b| b.to_vec()),
            Err(e) => Err(e),
        };
        match got {
            Ok(v) => found.push(v),
            Err(e) => errors.push(e.to_string()),
        }
    }
    match format.filter(|f| !f.is_empty()) {
        Some(f) => {
            let (out, errs) = formatter::inspect(f, &found)?;
            print!("{out}");
            errors.extend(errs);
        }
        None => {
            let found: Vec<Value> = found
                .iter()
                .map(|b| serde_json::from_slice(b))
                .collect::<Result<_, _>>()?;
            let mut out = Vec::new();
            let formatter = serde_json::ser::PrettyFormatter::with_indent(b"    ");
            let mut ser = serde_json::Serializer::with_formatter(&mut out, formatter);
            Value::Array(found).serialize(&mut ser)?;
            println!("{}", String::from_utf8_lossy(&out));
        }
    }
    if !errors.is_empty() {
        return Err(status(1, Some(errors.join("\n"))));
    }
    Ok(0)
}
