//! `berth top` and `berth stats`: the processes and resource usage of containers.

use anyhow::Result;
use berth_api::client::{encode_query, ClientError};
use serde_json::{json, Value};

use crate::connect;
use crate::fmt::{self, human_size, short_id};

use super::{StatsOpts, TopOpts};

pub async fn top(host: &str, o: &TopOpts) -> Result<i32> {
    let client = connect(host).await?;
    let q = if o.ps_args.is_empty() {
        String::new()
    } else {
        encode_query(&[("ps_args", o.ps_args.join(" "))])
    };
    let v: Value = client
        .get_json(&format!("/containers/{}/top", o.container), &q)
        .await?;
    let mut text = String::new();
    let titles: Vec<&str> = v["Titles"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    text.push_str(&titles.join("\t"));
    text.push('\n');
    for p in v["Processes"].as_array().cloned().unwrap_or_default() {
        let row: Vec<String> = p
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|v| crate::template::Value::from(v).to_go_string())
                    .collect()
            })
            .unwrap_or_default();
        text.push_str(&row.join("\t"));
        text.push('\n');
    }
    print!("{}", crate::tabwriter::tabwrite(&text));
    Ok(0)
}

fn stats_row(name: &str, id: &str, s: &Value, trunc: bool) -> Value {
    let cpu_delta = s["cpu_stats"]["cpu_usage"]["total_usage"]
        .as_f64()
        .unwrap_or(0.0)
        - s["precpu_stats"]["cpu_usage"]["total_usage"]
            .as_f64()
            .unwrap_or(0.0);
    let sys_delta = s["cpu_stats"]["system_cpu_usage"].as_f64().unwrap_or(0.0)
        - s["precpu_stats"]["system_cpu_usage"]
            .as_f64()
            .unwrap_or(0.0);
    let cpus = s["cpu_stats"]["online_cpus"].as_f64().unwrap_or(1.0);
    let cpu = if sys_delta > 0.0 && cpu_delta > 0.0 {
        cpu_delta / sys_delta * cpus * 100.0
    } else {
        0.0
    };
    let mem = &s["memory_stats"];
    let usage = mem["usage"].as_f64().unwrap_or(0.0);
    let cache = mem["stats"]["inactive_file"]
        .as_f64()
        .or_else(|| mem["stats"]["total_inactive_file"].as_f64())
        .unwrap_or(0.0);
    let used = (usage - cache).max(0.0);
    let limit = mem["limit"].as_f64().unwrap_or(0.0);
    let mem_pct = if limit > 0.0 {
        used / limit * 100.0
    } else {
        0.0
    };
    let (mut rx, mut tx) = (0.0, 0.0);
    if let Some(n) = s["networks"].as_object() {
        for v in n.values() {
            rx += v["rx_bytes"].as_f64().unwrap_or(0.0);
            tx += v["tx_bytes"].as_f64().unwrap_or(0.0);
        }
    }
    let (mut br, mut bw) = (0.0, 0.0);
    if let Some(a) = s["blkio_stats"]["io_service_bytes_recursive"].as_array() {
        for e in a {
            match e["op"].as_str().unwrap_or("").to_lowercase().as_str() {
                "read" => br += e["value"].as_f64().unwrap_or(0.0),
                "write" => bw += e["value"].as_f64().unwrap_or(0.0),
                _ => {}
            }
        }
    }
    json!({
        "Container": name,
        "ID": if trunc { short_id(id) } else { id.to_string() },
        "Name": s["name"].as_str().unwrap_or(name).trim_start_matches('/'),
        "CPUPerc": format!("{cpu:.2}%"),
        "MemUsage": format!("{} / {}", fmt::bytes_size(used), fmt::bytes_size(limit)),
        "MemPerc": format!("{mem_pct:.2}%"),
        "NetIO": format!("{} / {}", human_size(rx), human_size(tx)),
        "BlockIO": format!("{} / {}", human_size(br), human_size(bw)),
        "PIDs": s["pids_stats"]["current"].as_u64().unwrap_or(0).to_string(),
    })
}

pub async fn stats(host: &str, o: &StatsOpts) -> Result<i32> {
    let client = connect(host).await?;
    let headers: &[(&str, &str)] = &[
        ("Container", "CONTAINER"),
        ("ID", "CONTAINER ID"),
        ("Name", "NAME"),
        ("CPUPerc", "CPU %"),
        ("MemUsage", "MEM USAGE / LIMIT"),
        ("MemPerc", "MEM %"),
        ("NetIO", "NET I/O"),
        ("BlockIO", "BLOCK I/O"),
        ("PIDs", "PIDS"),
    ];
    let format = o.format.clone().unwrap_or_else(|| {
        "table {{.ID}}\t{{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}\t{{.MemPerc}}\t{{.NetIO}}\t{{.BlockIO}}\t{{.PIDs}}".into()
    });
    loop {
        let names: Vec<String> = if o.containers.is_empty() {
            let q = if o.all { "all=1" } else { "" };
            let list: Vec<Value> = client.get_json("/containers/json", q).await?;
            list.iter()
                .filter_map(|c| c["Id"].as_str().map(short_id))
                .collect()
        } else {
            o.containers.clone()
        };
        let mut tasks = Vec::new();
        for n in &names {
            let c = client.clone();
            let n = n.clone();
            tasks.push(tokio::spawn(async move {
                let r: Result<Value, ClientError> = c
                    .get_json(&format!("/containers/{n}/stats"), "stream=0")
                    .await;
                (n, r)
            }));
        }
        let mut rows = Vec::new();
        for t in tasks {
            let (n, r) = t.await?;
            let s = r?;
            let id = s["id"].as_str().unwrap_or(&n).to_string();
            rows.push(stats_row(&n, &id, &s, !o.no_trunc));
        }
        if !o.no_stream {
            print!("\x1b[2J\x1b[H");
        }
        let list = crate::formatter::List {
            ctx: "*container.statsContext",
            headers,
            labels: None,
        };
        crate::formatter::print_items(&format, &rows, &list)?;
        if o.no_stream {
            return Ok(0);
        }
    }
}
