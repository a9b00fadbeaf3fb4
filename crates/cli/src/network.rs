//! `berth network create|ls|inspect|rm|prune|connect|disconnect` and `berth port`, as the docker
//! CLI prints them.

use std::collections::HashMap;

use anyhow::Result;
use berth_api::client::{encode_query, Client};
use berth_api::models::{EndpointIpamConfig, EndpointSettings};
use clap::{Args, Subcommand};
use hyper::Method;
use serde::Serialize;
use serde_json::{json, Value};

use crate::container::create::kv_map;
use crate::fmt;
use crate::{connect, status};

#[derive(Subcommand, Debug)]
pub enum NetworkCmd {
    /// Create a network
    Create(CreateOpts),
    /// List networks
    #[command(alias = "list")]
    Ls(LsOpts),
    /// Display detailed information on one or more networks
    Inspect(InspectOpts),
    /// Remove one or more networks
    #[command(alias = "remove")]
    Rm(RmOpts),
    /// Remove all unused networks
    Prune(PruneOpts),
    /// Connect a container to a network
    Connect(ConnectOpts),
    /// Disconnect a container from a network
    Disconnect(DisconnectOpts),
}

#[derive(Args, Debug)]
pub struct CreateOpts {
    /// Driver to manage the Network
    #[arg(short, long, default_value = "bridge")]
    driver: String,
    /// Subnet in CIDR format that represents a network segment
    #[arg(long)]
    subnet: Vec<String>,
    /// IPv4 or IPv6 Gateway for the master subnet
    #[arg(long)]
    gateway: Vec<String>,
    /// Allocate container ip from a sub-range
    #[arg(long = "ip-range")]
    ip_range: Vec<String>,
    /// Auxiliary IPv4 or IPv6 addresses used by Network driver
    #[arg(long = "aux-address")]
    aux_address: Vec<String>,
    /// Enable or disable IPv6 address assignment
    #[arg(long, num_args = 0..=1, default_missing_value = "true", require_equals = true)]
    ipv6: Option<bool>,
    /// Restrict external access to the network
    #[arg(long)]
    internal: bool,
    /// Enable manual container attachment
    #[arg(long)]
    attachable: bool,
    /// Set metadata on a network
    #[arg(long)]
    label: Vec<String>,
    /// Set driver specific options
    #[arg(short = 'o', long = "opt")]
    opt: Vec<String>,
    name: String,
}

#[derive(Args, Debug)]
pub struct LsOpts {
    /// Only display network IDs
    #[arg(short, long)]
    quiet: bool,
    /// Do not truncate the output
    #[arg(long = "no-trunc")]
    no_trunc: bool,
    /// Provide filter values (e.g. "driver=bridge")
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
    networks: Vec<String>,
}

#[derive(Args, Debug)]
pub struct RmOpts {
    /// Do not error if the network does not exist
    #[arg(short, long)]
    force: bool,
    #[arg(required = true)]
    networks: Vec<String>,
}

#[derive(Args, Debug)]
pub struct PruneOpts {
    /// Do not prompt for confirmation
    #[arg(short, long)]
    force: bool,
    /// Provide filter values (e.g. "label=<key>=<value>")
    #[arg(long)]
    filter: Vec<String>,
}

#[derive(Args, Debug)]
pub struct ConnectOpts {
    /// Add network-scoped alias for the container
    #[arg(long)]
    alias: Vec<String>,
    /// IPv4 address (e.g., "172.30.100.104")
    #[arg(long)]
    ip: Option<String>,
    /// IPv6 address (e.g., "2001:db8::33")
    #[arg(long)]
    ip6: Option<String>,
    /// Add link to another container
    #[arg(long, value_parser = crate::container::validate_link)]
    link: Vec<String>,
    /// Add a link-local address for the container
    #[arg(long = "link-local-ip")]
    link_local_ip: Vec<String>,
    /// driver options for the network
    #[arg(long = "driver-opt", value_delimiter = ',')]
    driver_opt: Vec<String>,
    network: String,
    container: String,
}

#[derive(Args, Debug)]
pub struct DisconnectOpts {
    /// Force the container to disconnect from a network
    #[arg(short, long)]
    force: bool,
    network: String,
    container: String,
}

#[derive(Args, Debug)]
pub struct PortOpts {
    container: String,
    /// PRIVATE_PORT[/PROTO]
    port: Option<String>,
}

/// `--filter k=v` as the API's `filters` JSON.
fn filters(items: &[String]) -> String {
    let mut map: HashMap<String, HashMap<String, bool>> = HashMap::new();
    for f in items {
        let (k, v) = f.split_once('=').unwrap_or((f.as_str(), ""));
        map.entry(k.to_string())
            .or_default()
            .insert(v.to_string(), true);
    }
    if map.is_empty() {
        String::new()
    } else {
        serde_json::to_string(&map).unwrap_or_default()
    }
}

pub async fn network(host: &str, cmd: &NetworkCmd) -> Result<i32> {
    let client = connect(host).await?;
    match cmd {
        NetworkCmd::Create(o) => create(&client, o).await,
        NetworkCmd::Ls(o) => ls(&client, o).await,
        NetworkCmd::Inspect(o) => inspect(&client, o).await,
        NetworkCmd::Rm(o) => rm(&client, o).await,
        NetworkCmd::Prune(o) => prune(&client, o).await,
        NetworkCmd::Connect(o) => {
            let body = json!({"Container": o.container, "EndpointConfig": endpoint(o)?});
            post(&client, &format!("/networks/{}/connect", o.network), &body).await?;
            Ok(0)
        }
        NetworkCmd::Disconnect(o) => {
            let body = json!({"Container": o.container, "Force": o.force});
            post(
                &client,
                &format!("/networks/{}/disconnect", o.network),
                &body,
            )
            .await?;
            Ok(0)
        }
    }
}

async fn post(client: &Client, path: &str, body: &impl Serialize) -> Result<()> {
    let bytes = serde_json::to_vec(body)?;
    let resp = client
        .request(
            Method::POST,
            path,
            "",
            &[("Content-Type", "application/json".to_string())],
            berth_api::client::full_body(bytes),
        )
        .await?;
    berth_api::client::read_all(resp).await?;
    Ok(())
}

/// The endpoint `network connect` asks for, from its flags.
fn endpoint(o: &ConnectOpts) -> Result<EndpointSettings> {
    let mut driver_opts = HashMap::new();
    for opt in &o.driver_opt {
        match opt.split_once('=') {
            Some((k, v)) => driver_opts.insert(k.trim().to_string(), v.trim().to_string()),
            None => anyhow::bail!("invalid key value pair format in driver options"),
        };
    }
    Ok(EndpointSettings {
        aliases: Some(o.alias.clone()),
        links: (!o.link.is_empty()).then(|| o.link.clone()),
        driver_opts: (!driver_opts.is_empty()).then_some(driver_opts),
        ipam_config: Some(EndpointIpamConfig {
            ipv4_address: o.ip.clone(),
            ipv6_address: o.ip6.clone(),
            link_local_ips: (!o.link_local_ip.is_empty()).then(|| o.link_local_ip.clone()),
        }),
        ..Default::default()
    })
}

async fn create(client: &Client, o: &CreateOpts) -> Result<i32> {
    let config = crate::network_ipam::config(&o.subnet, &o.ip_range, &o.gateway, &o.aux_address)?;
    let body = json!({
        "Name": o.name, "Driver": o.driver, "CheckDuplicate": true,
        "IPAM": {"Driver": "default", "Options": {}, "Config": config},
        "Internal": o.internal, "Attachable": o.attachable, "EnableIPv6": o.ipv6,
        "Options": kv_map(&o.opt), "Labels": kv_map(&o.label),
    });
    let v: Value = client
        .json(Method::POST, "/networks/create", "", Some(&body))
        .await?;
    println!("{}", v["Id"].as_str().unwrap_or_default());
    Ok(0)
}

async fn ls(client: &Client, o: &LsOpts) -> Result<i32> {
    let f = filters(&o.filter);
    let q = if f.is_empty() {
        String::new()
    } else {
        encode_query(&[("filters", f)])
    };
    let mut list: Vec<Value> = client.get_json("/networks", &q).await?;
    list.sort_by(|a, b| a["Name"].as_str().cmp(&b["Name"].as_str()));
    if o.quiet {
        for n in &list {
            let id = n["Id"].as_str().unwrap_or_default();
            println!(
                "{}",
                if o.no_trunc {
                    id.to_string()
                } else {
                    fmt::short_id(id)
                }
            );
        }
        return Ok(0);
    }
    let items: Vec<Value> = list
        .iter()
        .map(|n| {
            let id = n["Id"].as_str().unwrap_or_default();
            json!({
                "ID": if o.no_trunc { id.to_string() } else { fmt::short_id(id) },
                "Name": n["Name"], "Driver": n["Driver"], "Scope": n["Scope"],
                "IPv6": n["EnableIPv6"], "Internal": n["Internal"],
                "Labels": crate::volume::labels_text(&n["Labels"]),
                "CreatedAt": n["Created"],
            })
        })
        .collect();
    let format = o
        .format
        .clone()
        .unwrap_or_else(|| "table {{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.Scope}}".to_string());
    let labels: Vec<Value> = list.iter().map(|n| n["Labels"].clone()).collect();
    crate::formatter::print_items(
        &format,
        &items,
        &crate::formatter::List {
            ctx: "*formatter.networkContext",
            headers: &[
                ("ID", "NETWORK ID"),
                ("Name", "NAME"),
                ("Driver", "DRIVER"),
                ("Scope", "SCOPE"),
            ],
            labels: Some(&labels),
        },
    )?;
    Ok(0)
}

async fn inspect(client: &Client, o: &InspectOpts) -> Result<i32> {
    crate::batch::inspect(client, "/networks", &o.networks, o.format.as_deref()).await
}

async fn rm(client: &Client, o: &RmOpts) -> Result<i32> {
    crate::batch::each(client, &o.networks, o.force, |n| {
        (Method::DELETE, format!("/networks/{n}"), String::new())
    })
    .await
}

async fn prune(client: &Client, o: &PruneOpts) -> Result<i32> {
    if !o.force {
        eprint!(
            "WARNING! This will remove all custom networks not used by at least one container.\nAre you sure you want to continue? [y/N] "
        );
        let mut answer = String::new();
        std::io::stdin().read_line(&mut answer)?;
        if !matches!(answer.trim(), "y" | "Y") {
            return Ok(0);
        }
    }
    let f = filters(&o.filter);
    let q = if f.is_empty() {
        String::new()
    } else {
        encode_query(&[("filters", f)])
    };
    let v: Value = client
        .json(Method::POST, "/networks/prune", &q, None::<&()>)
        .await?;
    let names: Vec<&str> = v["NetworksDeleted"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    if !names.is_empty() {
        println!("Deleted Networks:");
        for n in names {
            println!("{n}");
        }
    }
    Ok(0)
}

/// `berth port CONTAINER [PRIVATE_PORT[/PROTO]]`.
pub async fn port(host: &str, o: &PortOpts) -> Result<i32> {
    let client = connect(host).await?;
    let v: Value = client
        .get_json(&format!("/containers/{}/json", o.container), "")
        .await?;
    let ports = v["NetworkSettings"]["Ports"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    let mut keys: Vec<&String> = ports.keys().collect();
    keys.sort_by_key(|k| {
        let (p, proto) = k.split_once('/').unwrap_or((k, "tcp"));
        (p.parse::<u32>().unwrap_or(0), proto.to_string())
    });
    let wanted = o.port.as_ref().map(|p| {
        if p.contains('/') {
            p.clone()
        } else {
            format!("{p}/tcp")
        }
    });
    let mut any = false;
    for key in keys {
        if wanted.as_ref().is_some_and(|w| w != key) {
            continue;
        }
        for b in ports[key].as_array().into_iter().flatten() {
            let addr = format!(
                "{}:{}",
                b["HostIp"].as_str().unwrap_or_default(),
                b["HostPort"].as_str().unwrap_or_default()
            );
            any = true;
            if wanted.is_some() {
                println!("{addr}");
            } else {
                println!("{key} -> {addr}");
            }
        }
    }
    if let (Some(w), false) = (&o.port, any) {
        return Err(status(
            1,
            Some(format!(
                "Error: No public port '{}' published for {}",
                wanted.as_deref().unwrap_or(w),
                o.container
            )),
        ));
    }
    Ok(0)
}
