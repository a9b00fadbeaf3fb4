//! `berth logs`: fetch or follow a container's log output.

use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{bail, Result};
use berth_api::client::{empty_body, encode_query, BodyStream};
use hyper::Method;
use serde_json::Value;

use crate::connect;

use super::streams::Demux;
use super::LogsOpts;

fn now_unix() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// A time for `since`/`until`: a duration before now (`10m`), a unix time, or RFC 3339.
fn parse_time(s: &str) -> Result<String> {
    if s.parse::<f64>().is_ok() {
        return Ok(s.to_string());
    }
    if let Ok(d) = humantime::parse_duration(s) {
        return Ok((now_unix() - d.as_secs() as i64).to_string());
    }
    if let Ok(t) = humantime::parse_rfc3339_weak(s) {
        if let Ok(d) = t.duration_since(UNIX_EPOCH) {
            return Ok(d.as_secs().to_string());
        }
    }
    bail!("invalid time value: {s}")
}

pub async fn logs(host: &str, o: &LogsOpts) -> Result<i32> {
    let client = connect(host).await?;
    let info: Value = client
        .get_json(&format!("/containers/{}/json", o.container), "")
        .await?;
    let id = info["Id"].as_str().unwrap_or(&o.container).to_string();
    let tty = info["Config"]["Tty"].as_bool().unwrap_or(false);
    let mut q: Vec<(&str, String)> = Vec::new();
    if o.follow {
        q.push(("follow", "1".into()));
    }
    if let Some(s) = &o.since {
        q.push(("since", parse_time(s)?));
    }
    q.push(("stderr", "1".into()));
    q.push(("stdout", "1".into()));
    q.push(("tail", o.tail.clone()));
    if o.timestamps {
        q.push(("timestamps", "1".into()));
    }
    if let Some(u) = &o.until {
        q.push(("until", parse_time(u)?));
    }
    if o.details {
        q.push(("details", "1".into()));
    }
    let resp = client
        .request(
            Method::GET,
            &format!("/containers/{id}/logs"),
            &encode_query(&q),
            &[],
            empty_body(),
        )
        .await?;
    let mut body = BodyStream::new(resp);
    let mut demux = Demux::default();
    while let Some(chunk) = body.chunk().await? {
        if tty {
            let mut out = std::io::stdout().lock();
            out.write_all(&chunk)?;
            out.flush()?;
        } else {
            demux.feed(&chunk)?;
        }
    }
    Ok(0)
}
