//! `berth inspect`: low-level JSON of containers and images, with Go-style indentation.

use anyhow::Result;
use berth_api::client::{empty_body, read_all};
use hyper::Method;

use crate::formatter;
use crate::{connect, status};

use super::InspectOpts;

/// Go-style JSON indentation (4 spaces) of raw JSON text, keeping its key order.
pub fn indent_json(raw: &[u8], base: usize) -> String {
    let mut out = String::new();
    let mut depth = base;
    let mut in_str = false;
    let mut esc = false;
    let s = String::from_utf8_lossy(raw);
    let chars: Vec<char> = s.trim().chars().collect();
    let mut i = 0;
    let nl = |out: &mut String, d: usize| {
        out.push('\n');
        out.push_str(&"    ".repeat(d));
    };
    while i < chars.len() {
        let c = chars[i];
        if in_str {
            out.push(c);
            if esc {
                esc = false;
            } else if c == '\\' {
                esc = true;
            } else if c == '"' {
                in_str = false;
            }
            i += 1;
            continue;
        }
        match c {
            '"' => {
                in_str = true;
                out.push(c);
            }
            '{' | '[' => {
                let close = if c == '{' { '}' } else { ']' };
                let mut j = i + 1;
                while j < chars.len() && chars[j].is_whitespace() {
                    j += 1;
                }
                if j < chars.len() && chars[j] == close {
                    out.push(c);
                    out.push(close);
                    i = j + 1;
                    continue;
                }
                out.push(c);
                depth += 1;
                nl(&mut out, depth);
            }
            '}' | ']' => {
                depth = depth.saturating_sub(1);
                nl(&mut out, depth);
                out.push(c);
            }
            ',' => {
                out.push(',');
                nl(&mut out, depth);
            }
            ':' => out.push_str(": "),
            c if c.is_whitespace() => {}
            c => out.push(c),
        }
        i += 1;
    }
    out
}

pub async fn inspect(host: &str, o: &InspectOpts, forced: Option<&str>) -> Result<i32> {
    let client = connect(host).await?;
    let kind = forced.map(String::from).or_else(|| o.kind.clone());
    let mut found: Vec<Vec<u8>> = Vec::new();
    let mut errors = Vec::new();
    for name in &o.names {
        let mut got = None;
        let tries: Vec<(&str, String)> = match kind.as_deref() {
            Some("container") => vec![("container", format!("/containers/{name}/json"))],
            Some("image") => vec![("image", format!("/images/{name}/json"))],
            _ => vec![
                ("container", format!("/containers/{name}/json")),
                ("image", format!("/images/{name}/json")),
                ("network", format!("/networks/{name}")),
                ("volume", format!("/volumes/{name}")),
            ],
        };
        let mut last_err = None;
        for (k, path) in &tries {
            let q = if *k == "container" && o.size {
                "size=1"
            } else {
                ""
            };
            match client
                .request(Method::GET, path, q, &[], empty_body())
                .await
            {
                Ok(resp) => {
                    got = Some(read_all(resp).await?.to_vec());
                    break;
                }
                Err(e) if e.is_not_found() => last_err = Some(e),
                Err(e) => return Err(e.into()),
            }
        }
        match got {
            Some(b) => found.push(b),
            None => match (kind.as_deref(), last_err) {
                (Some(_), Some(e)) => errors.push(e.to_string()),
                _ => errors.push(format!("Error: No such object: {name}")),
            },
        }
    }
    match o.format.as_deref().filter(|f| !f.is_empty()) {
        Some(f) => {
            let (out, errs) = formatter::inspect(f, &found)?;
            print!("{out}");
            errors.extend(errs);
        }
        None => {
            if found.is_empty() {
                println!("[]");
            } else {
                let items: Vec<String> = found
                    .iter()
                    .map(|b| format!("    {}", indent_json(b, 1)))
                    .collect();
                println!("[\n{}\n]", items.join(",\n"));
            }
        }
    }
    if !errors.is_empty() {
        for e in &errors {
            eprintln!("{e}");
        }
        return Err(status(1, None));
    }
    Ok(0)
}
