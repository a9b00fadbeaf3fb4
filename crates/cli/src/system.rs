//! System commands: version, info, events, system df, the prunes.

use std::io::Write;

use anyhow::Result;
use berth_api::client::{empty_body, encode_query, BodyStream, Client};
use clap::Args;
use hyper::Method;
use serde_json::Value;

use crate::container::filters_query;
use crate::fmt::{self, human_size};
use crate::formatter;
use crate::{connect, ImagePruneOpts, PruneOpts, SystemPruneOpts};

#[derive(Args, Debug)]
pub struct VersionOpts {
    /// Format output using a custom template
    #[arg(short, long)]
    format: Option<String>,
}

#[derive(Args, Debug)]
pub struct InfoOpts {
    /// Format output using a custom template
    #[arg(short, long)]
    format: Option<String>,
}

#[derive(Args, Debug)]
pub struct EventsOpts {
    /// Show all events created since timestamp
    #[arg(long)]
    since: Option<String>,
    /// Stream events until this timestamp
    #[arg(long)]
    until: Option<String>,
    /// Filter output based on conditions provided
    #[arg(short, long = "filter")]
    filter: Vec<String>,
    /// Format output using a custom template
    #[arg(long)]
    format: Option<String>,
}

#[derive(Args, Debug)]
pub struct DfOpts {
    /// Show detailed information on space usage
    #[arg(short, long)]
    verbose: bool,
    /// Format output using a custom template
    #[arg(long)]
    format: Option<String>,
}

fn s<'a>(v: &'a Value, k: &str) -> &'a str {
    v.get(k).and_then(Value::as_str).unwrap_or("")
}

pub async fn version(host: &str, o: &VersionOpts) -> Result<i32> {
    let tmpl = match o.format.as_deref() {
        Some("json") => Some(formatter::parse_or_exit("version", "{{json .}}", 64)?),
        Some(f) if !f.is_empty() => Some(formatter::parse_or_exit("version", f, 64)?),
        _ => None,
    };
    let client_part = serde_json::json!({
        "Version": env!("CARGO_PKG_VERSION"),
        "ApiVersion": berth_api::API_VERSION,
        "Os": std::env::consts::OS,
        "Arch": go_arch(),
        "Context": crate::connection::current_context(),
    });
    let mut out = String::new();
    let line = |out: &mut String, label: &str, value: &str| {
        out.push_str(&format!("{:<20}{value}\n", format!("{label}:")));
    };
    out.push_str("Client:\n");
    line(&mut out, " Version", env!("CARGO_PKG_VERSION"));
    let connected = connect(host).await;
    let api_line = match &connected {
        Ok(c) if c.api_version() != berth_api::API_VERSION => format!(
            "{} (downgraded from {})",
            c.api_version(),
            berth_api::API_VERSION
        ),
        Ok(c) => c.api_version().to_string(),
        Err(_) => berth_api::API_VERSION.to_string(),
    };
    line(&mut out, " API version", &api_line);
    line(
        &mut out,
        " OS/Arch",
        &format!("{}/{}", std::env::consts::OS, go_arch()),
    );
    line(&mut out, " Context", &crate::connection::current_context());
    let client = match connected {
        Ok(c) => c,
        Err(e) => {
            if o.format.is_none() {
                print!("{out}");
            }
            return Err(e);
        }
    };
    let raw = {
        let resp = client
            .request(Method::GET, "/version", "", &[], empty_body())
            .await?;
        berth_api::client::read_all(resp).await?
    };
    if let Some(t) = &tmpl {
        // docker's prettyPrintVersion: through a tabwriter (minwidth 20, padding 1)
        let v = crate::template::Value::Map(vec![
            ("Client".into(), crate::template::Value::from(&client_part)),
            ("Server".into(), serde_json::from_slice(&raw)?),
        ]);
        let r = formatter::render(t, &v);
        let text = match &r {
            Ok(s) => s.clone(),
            Err(_) => t.execute_partial(&v, &Default::default()),
        };
        print!("{}", crate::tabwriter::align(&format!("{text}\n"), 20, 1));
        r?;
        return Ok(0);
    }
    let server: Value = serde_json::from_slice(&raw)?;
    out.push('\n');
    let platform = server["Platform"]["Name"].as_str().unwrap_or("");
    out.push_str(&format!(
        "Server:{}\n",
        if platform.is_empty() {
            String::new()
        } else {
            format!(" {platform}")
        }
    ));
    let components = server["Components"].as_array().cloned().unwrap_or_default();
    for c in &components {
        let name = s(c, "Name");
        out.push_str(&format!(" {name}:\n"));
        line(&mut out, "  Version", s(c, "Version"));
        if name == "Engine" {
            let d = &c["Details"];
            line(
                &mut out,
                "  API version",
                &format!(
                    "{} (minimum version {})",
                    s(d, "ApiVersion"),
                    s(d, "MinAPIVersion")
                ),
            );
            line(&mut out, "  Go version", s(d, "GoVersion"));
            line(&mut out, "  Git commit", s(d, "GitCommit"));
            line(&mut out, "  Built", s(d, "BuildTime"));
            line(
                &mut out,
                "  OS/Arch",
                &format!("{}/{}", s(d, "Os"), s(d, "Arch")),
            );
            line(&mut out, "  Experimental", s(d, "Experimental"));
        } else if let Some(d) = c["Details"].as_object() {
            for (k, v) in d {
                line(&mut out, &format!("  {k}"), v.as_str().unwrap_or(""));
            }
        }
    }
    if components.is_empty() {
        out.push_str(" Engine:\n");
        line(&mut out, "  Version", s(&server, "Version"));
        line(
            &mut out,
            "  API version",
            &format!(
                "{} (minimum version {})",
                s(&server, "ApiVersion"),
                s(&server, "MinAPIVersion")
            ),
        );
        line(
            &mut out,
            "  OS/Arch",
            &format!("{}/{}", s(&server, "Os"), s(&server, "Arch")),
        );
    }
    print!("{out}");
    Ok(0)
}

fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

pub async fn info(host: &str, o: &InfoOpts) -> Result<i32> {
    let client = connect(host).await?;
    let tmpl = match o.format.as_deref() {
        Some("json") => Some(formatter::parse_or_exit("", "{{json .}}", 64)?),
        Some(f) if !f.is_empty() => Some(formatter::parse_or_exit("", f, 64)?),
        _ => None,
    };
    let resp = client
        .request(Method::GET, "/info", "", &[], empty_body())
        .await?;
    let raw = berth_api::client::read_all(resp).await?;
    if let Some(t) = &tmpl {
        let v: crate::template::Value = serde_json::from_slice(&raw)?;
        let r = formatter::render(t, &v);
        match &r {
            Ok(s) => println!("{s}"),
            Err(_) => println!("{}", t.execute_partial(&v, &Default::default())),
        }
        r?;
        return Ok(0);
    }
    let i: Value = serde_json::from_slice(&raw)?;
    let n = |k: &str| i[k].as_i64().unwrap_or(0);
    let mut out = String::new();
    out.push_str("Client:\n");
    out.push_str(&format!(" Version:    {}\n", env!("CARGO_PKG_VERSION")));
    out.push_str(&format!(
        " Context:    {}\n",
        crate::connection::current_context()
    ));
    out.push_str(" Debug Mode: false\n\n");
    out.push_str("Server:\n");
    out.push_str(&format!(" Containers: {}\n", n("Containers")));
    out.push_str(&format!("  Running: {}\n", n("ContainersRunning")));
    out.push_str(&format!("  Paused: {}\n", n("ContainersPaused")));
    out.push_str(&format!("  Stopped: {}\n", n("ContainersStopped")));
    out.push_str(&format!(" Images: {}\n", n("Images")));
    out.push_str(&format!(" Server Version: {}\n", s(&i, "ServerVersion")));
    out.push_str(&format!(" Storage Driver: {}\n", s(&i, "Driver")));
    if let Some(st) = i["DriverStatus"].as_array() {
        for kv in st {
            if let Some(a) = kv.as_array() {
                if a.len() == 2 {
                    out.push_str(&format!(
                        "  {}: {}\n",
                        a[0].as_str().unwrap_or(""),
                        a[1].as_str().unwrap_or("")
                    ));
                }
            }
        }
    }
    out.push_str(&format!(" Logging Driver: {}\n", s(&i, "LoggingDriver")));
    out.push_str(&format!(" Cgroup Driver: {}\n", s(&i, "CgroupDriver")));
    out.push_str(&format!(" Cgroup Version: {}\n", s(&i, "CgroupVersion")));
    if let Some(r) = i["Runtimes"].as_object() {
        let mut names: Vec<&String> = r.keys().collect();
        names.sort();
        out.push_str(&format!(
            " Runtimes: {}\n",
            names
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(" ")
        ));
    }
    out.push_str(&format!(" Default Runtime: {}\n", s(&i, "DefaultRuntime")));
    out.push_str(&format!(" Init Binary: {}\n", s(&i, "InitBinary")));
    if let Some(so) = i["SecurityOptions"].as_array() {
        out.push_str(" Security Options:\n");
        for o in so {
            let o = o.as_str().unwrap_or("");
            let mut parts = o.split(',');
            if let Some(first) = parts.next() {
                out.push_str(&format!("  {}\n", first.trim_start_matches("name=")));
            }
            for p in parts {
                if let Some((k, v)) = p.split_once('=') {
                    let mut k = k.to_string();
                    if let Some(f) = k.get_mut(0..1) {
                        f.make_ascii_uppercase();
                    }
                    out.push_str(&format!("   {k}: {v}\n"));
                }
            }
        }
    }
    out.push_str(&format!(" Kernel Version: {}\n", s(&i, "KernelVersion")));
    out.push_str(&format!(
        " Operating System: {}\n",
        s(&i, "OperatingSystem")
    ));
    out.push_str(&format!(" OSType: {}\n", s(&i, "OSType")));
    out.push_str(&format!(" Architecture: {}\n", s(&i, "Architecture")));
    out.push_str(&format!(" CPUs: {}\n", n("NCPU")));
    out.push_str(&format!(
        " Total Memory: {}\n",
        fmt::bytes_size(i["MemTotal"].as_f64().unwrap_or(0.0))
    ));
    out.push_str(&format!(" Name: {}\n", s(&i, "Name")));
    out.push_str(&format!(" ID: {}\n", s(&i, "ID")));
    out.push_str(&format!(" Docker Root Dir: {}\n", s(&i, "DockerRootDir")));
    out.push_str(&format!(
        " Debug Mode: {}\n",
        i["Debug"].as_bool().unwrap_or(false)
    ));
    out.push_str(&format!(
        " Experimental: {}\n",
        i["ExperimentalBuild"].as_bool().unwrap_or(false)
    ));
    if let Some(cidrs) = i["RegistryConfig"]["InsecureRegistryCIDRs"].as_array() {
        out.push_str(" Insecure Registries:\n");
        for c in cidrs {
            out.push_str(&format!("  {}\n", c.as_str().unwrap_or("")));
        }
    }
    out.push_str(&format!(
        " Live Restore Enabled: {}\n",
        i["LiveRestoreEnabled"].as_bool().unwrap_or(false)
    ));
    print!("{out}");
    if let Some(w) = i["Warnings"].as_array() {
        for w in w {
            eprintln!("{}", w.as_str().unwrap_or(""));
        }
    }
    Ok(0)
}

fn event_time(secs: &str) -> Result<String> {
    // reuse the logs parser: durations, unix times, RFC 3339
    if secs.parse::<f64>().is_ok() {
        return Ok(secs.to_string());
    }
    if let Ok(d) = humantime::parse_duration(secs) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        return Ok(now.saturating_sub(d.as_secs()).to_string());
    }
    if let Ok(t) = humantime::parse_rfc3339_weak(secs) {
        if let Ok(d) = t.duration_since(std::time::UNIX_EPOCH) {
            return Ok(d.as_secs().to_string());
        }
    }
    anyhow::bail!("invalid time value: {secs}")
}

pub async fn events(host: &str, o: &EventsOpts) -> Result<i32> {
    let client = connect(host).await?;
    let mut q: Vec<(&str, String)> = Vec::new();
    if let Some(f) = filters_query(&o.filter)? {
        q.push(("filters", f));
    }
    if let Some(s) = &o.since {
        q.push(("since", event_time(s)?));
    }
    if let Some(u) = &o.until {
        q.push(("until", event_time(u)?));
    }
    let resp = client
        .request(Method::GET, "/events", &encode_query(&q), &[], empty_body())
        .await?;
    let mut body = BodyStream::new(resp);
    let tmpl = match o.format.as_deref() {
        Some("json") => Some(formatter::parse("{{json .}}")?),
        Some(f) if !f.is_empty() => Some(formatter::parse(f)?),
        _ => None,
    };
    while let Some(ev) = body.next_json::<Value>().await? {
        let line = match &tmpl {
            Some(t) => formatter::render(t, &crate::template::Value::from(&ev))?,
            None => {
                let nanos = ev["timeNano"].as_i64().unwrap_or(0);
                let t =
                    std::time::UNIX_EPOCH + std::time::Duration::from_nanos(nanos.max(0) as u64);
                let ts = humantime::format_rfc3339_nanos(t).to_string();
                let typ = s(&ev, "Type");
                let action = s(&ev, "Action");
                let actor = &ev["Actor"];
                let id = s(actor, "ID");
                let mut attrs: Vec<String> = actor["Attributes"]
                    .as_object()
                    .map(|m| {
                        m.iter()
                            .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                            .collect()
                    })
                    .unwrap_or_default();
                attrs.sort();
                if attrs.is_empty() {
                    format!("{ts} {typ} {action} {id}")
                } else {
                    format!("{ts} {typ} {action} {id} ({})", attrs.join(", "))
                }
            }
        };
        let mut out = std::io::stdout().lock();
        writeln!(out, "{line}")?;
        out.flush()?;
    }
    Ok(0)
}

pub async fn df(host: &str, o: &DfOpts) -> Result<i32> {
    let client = connect(host).await?;
    let d: Value = client.get_json("/system/df", "").await?;
    let images = d["Images"].as_array().cloned().unwrap_or_default();
    let containers = d["Containers"].as_array().cloned().unwrap_or_default();
    let volumes = d["Volumes"].as_array().cloned().unwrap_or_default();
    let layers = d["LayersSize"].as_f64().unwrap_or(0.0);
    let active_images = images
        .iter()
        .filter(|i| i["Containers"].as_i64().unwrap_or(0) > 0)
        .count();
    let reclaim_images: f64 = images
        .iter()
        .filter(|i| i["Containers"].as_i64().unwrap_or(0) <= 0)
        .map(|i| {
            i["Size"].as_f64().unwrap_or(0.0) - i["SharedSize"].as_f64().unwrap_or(0.0).max(0.0)
        })
        .sum();
    let active_c = containers
        .iter()
        .filter(|c| {
            matches!(
                c["State"].as_str(),
                Some("running") | Some("paused") | Some("restarting")
            )
        })
        .count();
    let c_size: f64 = containers
        .iter()
        .map(|c| c["SizeRw"].as_f64().unwrap_or(0.0))
        .sum();
    let c_reclaim: f64 = containers
        .iter()
        .filter(|c| {
            !matches!(
                c["State"].as_str(),
                Some("running") | Some("paused") | Some("restarting")
            )
        })
        .map(|c| c["SizeRw"].as_f64().unwrap_or(0.0))
        .sum();
    let v_active = volumes
        .iter()
        .filter(|v| v["UsageData"]["RefCount"].as_i64().unwrap_or(0) > 0)
        .count();
    let v_size: f64 = volumes
        .iter()
        .map(|v| v["UsageData"]["Size"].as_f64().unwrap_or(0.0).max(0.0))
        .sum();
    let v_reclaim: f64 = volumes
        .iter()
        .filter(|v| v["UsageData"]["RefCount"].as_i64().unwrap_or(0) == 0)
        .map(|v| v["UsageData"]["Size"].as_f64().unwrap_or(0.0).max(0.0))
        .sum();
    let pct = |r: f64, t: f64| {
        if t > 0.0 {
            format!("{} ({}%)", human_size(r), (r * 100.0 / t) as i64)
        } else {
            human_size(r)
        }
    };
    let rows = vec![
        serde_json::json!({"Type": "Images", "TotalCount": images.len().to_string(), "Active": active_images.to_string(), "Size": human_size(layers), "Reclaimable": pct(reclaim_images.max(0.0), layers)}),
        serde_json::json!({"Type": "Containers", "TotalCount": containers.len().to_string(), "Active": active_c.to_string(), "Size": human_size(c_size), "Reclaimable": pct(c_reclaim, c_size)}),
        serde_json::json!({"Type": "Local Volumes", "TotalCount": volumes.len().to_string(), "Active": v_active.to_string(), "Size": human_size(v_size), "Reclaimable": pct(v_reclaim, v_size)}),
        serde_json::json!({"Type": "Build Cache", "TotalCount": "0", "Active": "0", "Size": "0B", "Reclaimable": "0B"}),
    ];
    let _ = o.verbose;
    let format = o.format.clone().unwrap_or_else(|| {
        "table {{.Type}}\t{{.TotalCount}}\t{{.Active}}\t{{.Size}}\t{{.Reclaimable}}".into()
    });
    crate::formatter::print_items(
        &format,
        &rows,
        &crate::formatter::List {
            ctx: "*formatter.diskUsageContext",
            headers: &[
                ("Type", "TYPE"),
                ("TotalCount", "TOTAL"),
                ("Active", "ACTIVE"),
                ("Size", "SIZE"),
                ("Reclaimable", "RECLAIMABLE"),
            ],
            labels: None,
        },
    )?;
    Ok(0)
}

/// Asks docker's "Are you sure you want to continue? [y/N]" (on stdout) unless `force`.
pub(crate) fn confirm(warning: &str, force: bool) -> Result<bool> {
    if force {
        return Ok(true);
    }
    print!("{warning}\nAre you sure you want to continue? [y/N] ");
    std::io::stdout().flush()?;
    let mut l = String::new();
    std::io::stdin().read_line(&mut l)?;
    Ok(matches!(l.trim().to_lowercase().as_str(), "y" | "yes"))
}

async fn prune_containers(client: &Client, filter: &[String]) -> Result<f64> {
    let q = match filters_query(filter)? {
        Some(f) => encode_query(&[("filters", f)]),
        None => String::new(),
    };
    let r: Value = client
        .json(Method::POST, "/containers/prune", &q, None::<&()>)
        .await?;
    if let Some(d) = r["ContainersDeleted"].as_array() {
        if !d.is_empty() {
            println!("Deleted Containers:");
            for id in d {
                println!("{}", id.as_str().unwrap_or(""));
            }
            println!();
        }
    }
    Ok(r["SpaceReclaimed"].as_f64().unwrap_or(0.0))
}

async fn prune_images(client: &Client, all: bool, filter: &[String]) -> Result<f64> {
    let mut filter = filter.to_vec();
    filter.push(format!("dangling={}", !all));
    let q = match filters_query(&filter)? {
        Some(f) => encode_query(&[("filters", f)]),
        None => String::new(),
    };
    let r: Value = client
        .json(Method::POST, "/images/prune", &q, None::<&()>)
        .await?;
    if let Some(d) = r["ImagesDeleted"].as_array() {
        if !d.is_empty() {
            println!("Deleted Images:");
            for it in d {
                if let Some(u) = it["Untagged"].as_str() {
                    println!("untagged: {u}");
                }
                if let Some(x) = it["Deleted"].as_str() {
                    println!("deleted: {x}");
                }
            }
            println!();
        }
    }
    Ok(r["SpaceReclaimed"].as_f64().unwrap_or(0.0))
}

pub async fn container_prune(host: &str, o: &PruneOpts) -> Result<i32> {
    let client = connect(host).await?;
    if !confirm("WARNING! This will remove all stopped containers.", o.force)? {
        return Ok(0);
    }
    let n = prune_containers(&client, &o.filter).await?;
    println!("Total reclaimed space: {}", fmt::human_size_4(n));
    Ok(0)
}

pub async fn image_prune(host: &str, o: &ImagePruneOpts) -> Result<i32> {
    let client = connect(host).await?;
    let warning = if o.all {
        "WARNING! This will remove all images without at least one container associated to them."
    } else {
        "WARNING! This will remove all dangling images."
    };
    if !confirm(warning, o.force)? {
        return Ok(0);
    }
    let n = prune_images(&client, o.all, &o.filter).await?;
    println!("Total reclaimed space: {}", fmt::human_size_4(n));
    Ok(0)
}

pub async fn system_prune(host: &str, o: &SystemPruneOpts) -> Result<i32> {
    let client = connect(host).await?;
    let mut w = String::from("WARNING! This will remove:\n  - all stopped containers\n  - all networks not used by at least one container\n");
    if o.volumes {
        w.push_str("  - all anonymous volumes not used by at least one container\n");
    }
    if o.all {
        w.push_str("  - all images without at least one container associated to them\n");
    } else {
        w.push_str("  - all dangling images\n");
    }
    if !confirm(w.trim_end(), o.force)? {
        return Ok(0);
    }
    let mut total = prune_containers(&client, &o.filter).await?;
    let q = match filters_query(&o.filter)? {
        Some(f) => encode_query(&[("filters", f)]),
        None => String::new(),
    };
    if let Ok(r) = client
        .json::<Value>(Method::POST, "/networks/prune", &q, None::<&()>)
        .await
    {
        if let Some(d) = r["NetworksDeleted"].as_array() {
            if !d.is_empty() {
                println!("Deleted Networks:");
                for n in d {
                    println!("{}", n.as_str().unwrap_or(""));
                }
                println!();
            }
        }
    }
    if o.volumes {
        if let Ok(r) = client
            .json::<Value>(Method::POST, "/volumes/prune", &q, None::<&()>)
            .await
        {
            if let Some(d) = r["VolumesDeleted"].as_array() {
                if !d.is_empty() {
                    println!("Deleted Volumes:");
                    for n in d {
                        println!("{}", n.as_str().unwrap_or(""));
                    }
                    println!();
                }
            }
            total += r["SpaceReclaimed"].as_f64().unwrap_or(0.0);
        }
    }
    total += prune_images(&client, o.all, &o.filter).await?;
    println!("Total reclaimed space: {}", fmt::human_size_4(total));
    Ok(0)
}
