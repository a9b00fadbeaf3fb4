//! `berth ps`: listing containers, the `--filter` query and the table/`--format` columns.

use std::time::UNIX_EPOCH;

use anyhow::{anyhow, Result};
use berth_api::client::encode_query;
use serde_json::{json, Value};

use crate::connect;
use crate::fmt::{ellipsis, go_quote, human_size, short_id, since_unix};

use super::PsOpts;

fn filters_json(filters: &[String]) -> Result<String> {
    let mut m: serde_json::Map<String, Value> = serde_json::Map::new();
    for f in filters {
        let (k, v) = f
            .split_once('=')
            .ok_or_else(|| anyhow!("bad format of filter (expected name=value)"))?;
        let e = m
            .entry(k.to_lowercase())
            .or_insert_with(|| Value::Object(Default::default()));
        if let Value::Object(o) = e {
            o.insert(v.to_string(), Value::Bool(true));
        }
    }
    Ok(serde_json::to_string(&m)?)
}

pub fn filters_query(filters: &[String]) -> Result<Option<String>> {
    if filters.is_empty() {
        Ok(None)
    } else {
        Ok(Some(filters_json(filters)?))
    }
}

fn format_ports(ports: &Value) -> String {
    let mut out = Vec::new();
    if let Some(a) = ports.as_array() {
        for p in a {
            let private = p["PrivatePort"].as_i64().unwrap_or(0);
            let typ = p["Type"].as_str().unwrap_or("tcp");
            match p["PublicPort"].as_i64() {
                Some(public) if public != 0 => {
                    let ip = p["IP"].as_str().unwrap_or("");
                    let ip = if ip.contains(':') {
                        format!("[{ip}]")
                    } else {
                        ip.to_string()
                    };
                    out.push(format!("{ip}:{public}->{private}/{typ}"));
                }
                _ => out.push(format!("{private}/{typ}")),
            }
        }
    }
    out.join(", ")
}

fn created_at(secs: i64) -> String {
    let t = UNIX_EPOCH + std::time::Duration::from_secs(secs.max(0) as u64);
    let s = humantime::format_rfc3339_seconds(t).to_string();
    format!("{} +0000 UTC", s.trim_end_matches('Z').replace('T', " "))
}

fn container_context(c: &Value, trunc: bool) -> Value {
    let id = c["Id"].as_str().unwrap_or("");
    let names: Vec<String> = c["Names"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(|n| n.trim_start_matches('/').to_string())
                .filter(|n| !trunc || !n.contains('/'))
                .collect()
        })
        .unwrap_or_default();
    let command = c["Command"].as_str().unwrap_or("");
    let command = if trunc {
        go_quote(&ellipsis(command, 20))
    } else {
        go_quote(command)
    };
    let created = c["Created"].as_i64().unwrap_or(0);
    let mut labels: Vec<String> = c["Labels"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                .collect()
        })
        .unwrap_or_default();
    labels.sort();
    let size = {
        let rw = c["SizeRw"].as_f64().unwrap_or(0.0);
        let root = c["SizeRootFs"].as_f64().unwrap_or(0.0);
        if root > 0.0 {
            format!("{} (virtual {})", human_size(rw), human_size(root))
        } else {
            human_size(rw)
        }
    };
    let mounts: Vec<String> = c["Mounts"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|m| {
                    let n = m["Name"].as_str().unwrap_or("");
                    if n.is_empty() {
                        m["Source"].as_str().unwrap_or("").to_string()
                    } else if trunc {
                        ellipsis(n, 15)
                    } else {
                        n.to_string()
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    let mut networks: Vec<String> = c["NetworkSettings"]["Networks"]
        .as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    networks.sort();
    let mut image = c["Image"].as_str().unwrap_or("").to_string();
    if trunc {
        if let Some((name, _)) = image.split_once("@sha256:") {
            image = name.to_string();
        } else if image.starts_with("sha256:") {
            image = short_id(&image);
        }
    }
    json!({
        "Command": command,
        "CreatedAt": created_at(created),
        "ID": if trunc { short_id(id) } else { id.to_string() },
        "Image": image,
        "Labels": labels.join(","),
        "LocalVolumes": mounts.len().to_string(),
        "Mounts": mounts.join(","),
        "Names": names.join(","),
        "Networks": networks.join(","),
        "Ports": format_ports(&c["Ports"]),
        "RunningFor": since_unix(created),
        "Size": size,
        "State": c["State"].as_str().unwrap_or(""),
        "Status": c["Status"].as_str().unwrap_or(""),
    })
}

pub const PS_HEADERS: &[(&str, &str)] = &[
    ("ID", "CONTAINER ID"),
    ("Image", "IMAGE"),
    ("Command", "COMMAND"),
    ("CreatedAt", "CREATED AT"),
    ("RunningFor", "CREATED"),
    ("Ports", "PORTS"),
    ("State", "STATE"),
    ("Status", "STATUS"),
    ("Size", "SIZE"),
    ("Names", "NAMES"),
    ("Labels", "LABELS"),
    ("Mounts", "MOUNTS"),
    ("Networks", "NETWORKS"),
    ("LocalVolumes", "LOCAL VOLUMES"),
];

pub async fn ps(host: &str, o: &PsOpts) -> Result<i32> {
    let client = connect(host).await?;
    let mut q: Vec<(&str, String)> = Vec::new();
    let limit = if o.latest { 1 } else { o.last };
    if o.all {
        q.push(("all", "1".into()));
    }
    if let Some(f) = filters_query(&o.filter)? {
        q.push(("filters", f));
    }
    if limit > 0 {
        q.push(("limit", limit.to_string()));
    }
    let size = o.size || o.format.as_deref().is_some_and(|f| f.contains(".Size"));
    if size {
        q.push(("size", "1".into()));
    }
    let list: Vec<Value> = client
        .get_json("/containers/json", &encode_query(&q))
        .await?;
    let items: Vec<Value> = list
        .iter()
        .map(|c| container_context(c, !o.no_trunc))
        .collect();
    let format = if o.quiet {
        "{{.ID}}".to_string()
    } else if let Some(f) = &o.format {
        f.clone()
    } else {
        let mut f = "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}"
            .to_string();
        if o.size {
            f.push_str("\t{{.Size}}");
        }
        f
    };
    let labels: Vec<Value> = list.iter().map(|c| c["Labels"].clone()).collect();
    let list = crate::formatter::List {
        ctx: "*formatter.ContainerContext",
        headers: PS_HEADERS,
        labels: Some(&labels),
    };
    crate::formatter::print_items(&format, &items, &list)?;
    Ok(0)
}
