//! docker's jsonmessage rendering of progress streams (pull, push, load, import).

use std::collections::HashMap;
use std::io::Write;

use anyhow::{bail, Result};
use berth_api::client::BodyStream;
use serde_json::Value;

use crate::fmt::human_size;

fn progress_bar(detail: &Value, width: u16) -> String {
    let current = detail.get("current").and_then(Value::as_i64).unwrap_or(0);
    let total = detail.get("total").and_then(Value::as_i64).unwrap_or(0);
    if current <= 0 && total <= 0 {
        return String::new();
    }
    let hs = |n: i64| human_size4(n as f64);
    if total <= 0 {
        return format!("{:>8}", hs(current));
    }
    let mut pct = ((current as f64 / total as f64 * 100.0) as i64 / 2).min(50);
    if pct < 0 {
        pct = 0;
    }
    let mut bar = String::new();
    if width > 110 {
        bar = format!(
            "[{}>{}] ",
            "=".repeat(pct as usize),
            " ".repeat((50 - pct).max(0) as usize)
        );
    }
    let numbers = if current > total {
        format!("{:>8}", hs(current))
    } else {
        format!("{:>8}/{}", hs(current), hs(total))
    };
    bar + &numbers
}

fn human_size4(v: f64) -> String {
    // units.HumanSize uses 4 significant digits
    let s = human_size(v);
    if v >= 1000.0 {
        let mut x = v;
        let mut i = 0;
        const U: [&str; 7] = ["B", "kB", "MB", "GB", "TB", "PB", "EB"];
        while x >= 1000.0 && i < U.len() - 1 {
            x /= 1000.0;
            i += 1;
        }
        let digits = x.log10().floor() as i32;
        let dec = (3 - digits).max(0) as usize;
        let t = format!("{x:.dec$}");
        let t = if t.contains('.') {
            t.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            t
        };
        return format!("{t}{}", U[i]);
    }
    s
}

/// Renders a JSON-lines progress stream to `out` as `DisplayJSONMessagesStream`; returns the
/// `aux` messages. An in-band error ends the stream as an error.
pub async fn display(body: &mut BodyStream, out: &mut dyn Write, tty: bool) -> Result<Vec<Value>> {
    let width = crate::term::size().map(|s| s.1).unwrap_or(80);
    let mut ids: HashMap<String, usize> = HashMap::new();
    let mut aux = Vec::new();
    while let Some(jm) = body.next_json::<Value>().await? {
        if let Some(a) = jm.get("aux") {
            aux.push(a.clone());
            continue;
        }
        let id = jm.get("id").and_then(Value::as_str).unwrap_or("");
        let progress = jm.get("progressDetail");
        let progress_msg = jm.get("progress").and_then(Value::as_str).unwrap_or("");
        let stream = jm.get("stream").and_then(Value::as_str).unwrap_or("");
        let status = jm.get("status").and_then(Value::as_str).unwrap_or("");
        let mut diff = 0;
        if !id.is_empty() && (progress.is_some() || !progress_msg.is_empty()) {
            let n = ids.len();
            let line = *ids.entry(id.to_string()).or_insert_with(|| {
                if tty {
                    let _ = writeln!(out);
                }
                n
            });
            diff = ids.len() - line;
            if tty && diff > 0 {
                write!(out, "\x1b[{diff}A")?;
            }
        } else {
            ids.clear();
        }
        if let Some(err) = jm.get("errorDetail").or_else(|| jm.get("error")) {
            let msg = err
                .get("message")
                .and_then(Value::as_str)
                .or_else(|| err.as_str())
                .unwrap_or("unknown error")
                .to_string();
            out.flush()?;
            bail!("{msg}");
        }
        let bar = progress.map(|p| progress_bar(p, width)).unwrap_or_default();
        let mut endl = "";
        if tty && stream.is_empty() && progress.is_some() {
            write!(out, "\x1b[2K\r")?;
            endl = "\r";
        } else if progress.is_some() && !bar.is_empty() {
            // no progress bars without a terminal
            continue;
        }
        if !id.is_empty() {
            write!(out, "{id}: ")?;
        }
        if progress.is_some() && tty {
            write!(out, "{status} {bar}{endl}")?;
        } else if !progress_msg.is_empty() {
            write!(out, "{status} {progress_msg}{endl}")?;
        } else if !stream.is_empty() {
            write!(out, "{stream}{endl}")?;
        } else {
            writeln!(out, "{status}{endl}")?;
        }
        if tty && !id.is_empty() && diff > 0 {
            write!(out, "\x1b[{diff}B")?;
        }
        out.flush()?;
    }
    Ok(aux)
}
