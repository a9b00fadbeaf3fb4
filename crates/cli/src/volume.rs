//! `berth volume create|ls|inspect|rm|prune`, as the docker CLI prints them: names on
//! create and rm, the `DRIVER  VOLUME NAME` table, inspect's indented JSON array, and prune's
//! "Deleted Volumes:" list with the space reclaimed.

use std::cmp::Ordering;

use anyhow::Result;
use berth_api::client::{encode_query, Client};
use clap::{Args, Subcommand};
use hyper::Method;
use serde_json::{json, Value};

use crate::container::create::kv_map;
use crate::container::filters_query;
use crate::fmt;
use crate::system::confirm;
use crate::{connect, status};

#[derive(Subcommand, Debug)]
pub enum VolumeCmd {
    /// Create a volume
    Create(CreateOpts),
    /// List volumes
    #[command(alias = "list")]
    Ls(LsOpts),
    /// Display detailed information on one or more volumes
    Inspect(InspectOpts),
    /// Remove one or more volumes
    #[command(alias = "remove")]
    Rm(RmOpts),
    /// Remove unused local volumes
    Prune(PruneOpts),
}

#[derive(Args, Debug)]
pub struct CreateOpts {
    /// Specify volume driver name
    #[arg(short, long, default_value = "local")]
    driver: String,
    /// Set metadata for a volume
    #[arg(long)]
    label: Vec<String>,
    /// Set driver specific options
    #[arg(short = 'o', long = "opt")]
    opt: Vec<String>,
    /// Specify volume name
    #[arg(long = "name", hide = true)]
    name_flag: Option<String>,
    name: Option<String>,
}

#[derive(Args, Debug)]
pub struct LsOpts {
    /// Only display volume names
    #[arg(short, long)]
    quiet: bool,
    /// Provide filter values (e.g. "dangling=true")
    #[arg(short, long)]
    filter: Vec<String>,
    /// Format output using a custom template
    #[arg(long)]
    format: Option<String>,
}

#[derive(Args, Debug)]
pub struct InspectOpts {
    /// Format output using a custom template
    #[arg(short, long)]
    format: Option<String>,
    #[arg(required = true)]
    volumes: Vec<String>,
}

#[derive(Args, Debug)]
pub struct RmOpts {
    /// Force the removal of one or more volumes
    #[arg(short, long)]
    force: bool,
    #[arg(required = true)]
    volumes: Vec<String>,
}

#[derive(Args, Debug)]
pub struct PruneOpts {
    /// Remove all unused volumes, not just anonymous ones
    #[arg(short, long)]
    all: bool,
    /// Do not prompt for confirmation
    #[arg(short, long)]
    force: bool,
    /// Provide filter values (e.g. "label=<label>")
    #[arg(long)]
    filter: Vec<String>,
}

pub async fn volume(host: &str, cmd: &VolumeCmd) -> Result<i32> {
    let client = connect(host).await?;
    match cmd {
        VolumeCmd::Create(o) => create(&client, o).await,
        VolumeCmd::Ls(o) => ls(&client, o).await,
        VolumeCmd::Inspect(o) => inspect(&client, o).await,
        VolumeCmd::Rm(o) => rm(&client, o).await,
        VolumeCmd::Prune(o) => prune(&client, o).await,
    }
}

/// `--filter k=v` as a query string (empty without filters).
fn filters(items: &[String]) -> Result<String> {
    Ok(match filters_query(items)? {
        Some(f) => encode_query(&[("filters", f)]),
        None => String::new(),
    })
}

async fn create(client: &Client, o: &CreateOpts) -> Result<i32> {
    let name = match (&o.name_flag, &o.name) {
        (Some(f), Some(p)) if f != p => return Err(status(
            1,
            Some(
                "conflicting options: either specify --name or provide positional arg, not both"
                    .to_string(),
            ),
        )),
        (Some(n), _) | (None, Some(n)) => n.clone(),
        (None, None) => String::new(),
    };
    let body = json!({
        "Name": name, "Driver": o.driver,
        "DriverOpts": kv_map(&o.opt), "Labels": kv_map(&o.label),
    });
    let v: Value = client
        .json(Method::POST, "/volumes/create", "", Some(&body))
        .await?;
    println!("{}", v["Name"].as_str().unwrap_or_default());
    Ok(0)
}

/// Go's `sortorder.NaturalLess`: runs of digits compare by their value.
fn natural_cmp(a: &str, b: &str) -> Ordering {
    let (mut a, mut b) = (a.as_bytes(), b.as_bytes());
    loop {
        match (a.first(), b.first()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(x), Some(y)) if x.is_ascii_digit() && y.is_ascii_digit() => {
                let da = a.iter().take_while(|c| c.is_ascii_digit()).count();
                let db = b.iter().take_while(|c| c.is_ascii_digit()).count();
                let na = trim_zeros(&a[..da]);
                let nb = trim_zeros(&b[..db]);
                let by_value = na.len().cmp(&nb.len()).then_with(|| na.cmp(nb));
                if by_value != Ordering::Equal {
                    return by_value;
                }
                a = &a[da..];
                b = &b[db..];
            }
            (Some(x), Some(y)) => {
                if x != y {
                    return x.cmp(y);
                }
                a = &a[1..];
                b = &b[1..];
            }
        }
    }
}

fn trim_zeros(digits: &[u8]) -> &[u8] {
    let zeros = digits.iter().take_while(|c| **c == b'0').count();
    &digits[zeros..]
}

/// `k=v,k2=v2`, as docker's `{{.Labels}}` column.
pub fn labels_text(labels: &Value) -> String {
    let mut pairs: Vec<String> = labels
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
        .collect();
    pairs.sort();
    pairs.join(",")
}

async fn ls(client: &Client, o: &LsOpts) -> Result<i32> {
    let q = filters(&o.filter)?;
    let v: Value = client.get_json("/volumes", &q).await?;
    let mut list: Vec<Value> = v["Volumes"].as_array().cloned().unwrap_or_default();
    list.sort_by(|a, b| {
        natural_cmp(
            a["Name"].as_str().unwrap_or_default(),
            b["Name"].as_str().unwrap_or_default(),
        )
    });
    if o.quiet && o.format.is_none() {
        for n in &list {
            println!("{}", n["Name"].as_str().unwrap_or_default());
        }
        return Ok(0);
    }
    let items: Vec<Value> = list
        .iter()
        .map(|n| {
            json!({
                "Name": n["Name"], "Driver": n["Driver"], "Scope": n["Scope"],
                "Mountpoint": n["Mountpoint"], "Labels": labels_text(&n["Labels"]),
                "Links": "N/A", "Size": "N/A", "CreatedAt": n["CreatedAt"],
            })
        })
        .collect();
    let format = o
        .format
        .clone()
        .unwrap_or_else(|| "table {{.Driver}}\t{{.Name}}".to_string());
    let labels: Vec<Value> = list.iter().map(|n| n["Labels"].clone()).collect();
    crate::formatter::print_items(
        &format,
        &items,
        &crate::formatter::List {
            ctx: "*formatter.volumeContext",
            headers: &[
                ("Name", "VOLUME NAME"),
                ("Driver", "DRIVER"),
                ("Scope", "SCOPE"),
                ("Mountpoint", "MOUNTPOINT"),
                ("Labels", "LABELS"),
                ("Links", "LINKS"),
                ("Size", "SIZE"),
            ],
            labels: Some(&labels),
        },
    )?;
    Ok(0)
}

async fn inspect(client: &Client, o: &InspectOpts) -> Result<i32> {
    crate::batch::inspect(client, "/volumes", &o.volumes, o.format.as_deref()).await
}

async fn rm(client: &Client, o: &RmOpts) -> Result<i32> {
    // As docker's, `-f` goes to the daemon, which then takes a missing volume as removed
    // (and the name is printed).
    let query = if o.force {
        encode_query(&[("force", "1".to_string())])
    } else {
        String::new()
    };
    crate::batch::each(client, &o.volumes, false, |n| {
        (Method::DELETE, format!("/volumes/{n}"), query.clone())
    })
    .await
}

async fn prune(client: &Client, o: &PruneOpts) -> Result<i32> {
    let mut filter = o.filter.clone();
    let warning = if o.all {
        if filter.iter().any(|f| f.split('=').next() == Some("all")) {
            return Err(status(
                1,
                Some(
                    "conflicting options: cannot specify both --all and --filter all=1".to_string(),
                ),
            ));
        }
        filter.push("all=true".to_string());
        "WARNING! This will remove all local volumes not used by at least one container."
    } else {
        "WARNING! This will remove anonymous local volumes not used by at least one container."
    };
    if !confirm(warning, o.force)? {
        return Ok(0);
    }
    let q = filters(&filter)?;
    let v: Value = client
        .json(Method::POST, "/volumes/prune", &q, None::<&()>)
        .await?;
    let names: Vec<&str> = v["VolumesDeleted"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    let mut space = 0.0;
    if !names.is_empty() {
        println!("Deleted Volumes:");
        for n in names {
            println!("{n}");
        }
        println!();
        space = v["SpaceReclaimed"].as_f64().unwrap_or(0.0);
    }
    println!("Total reclaimed space: {}", fmt::human_size_4(space));
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_sort_naturally() {
        let mut names = vec!["v10", "v2", "a", "v1", "v01x"];
        names.sort_by(|a, b| natural_cmp(a, b));
        assert_eq!(names, ["a", "v1", "v01x", "v2", "v10"]);
    }

    #[test]
    fn labels_column() {
        assert_eq!(labels_text(&json!({"b": "2", "a": "1"})), "a=1,b=2");
        assert_eq!(labels_text(&Value::Null), "");
    }
}
