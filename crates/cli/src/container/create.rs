//! `berth create` and the container-creating half of `run`: the create/run flags turned into
//! a create body, and the create call that pulls a missing image first.

use std::collections::HashMap;

use anyhow::{anyhow, bail, Result};
use berth_api::client::{encode_query, Client};
use berth_api::models::{
    ContainerCreateBody, HostConfig, HostConfigLogConfig, NetworkingConfig, ResourcesUlimits,
    RestartPolicy, RestartPolicyNameEnum,
};
use hyper::Method;

use crate::fmt;
use crate::{connect, status};

use super::{env_list, CreateCmd, CreateOpts};

/// `KEY=VALUE` list to a map (`KEY` alone maps to "").
pub(crate) fn kv_map(items: &[String]) -> HashMap<String, String> {
    items
        .iter()
        .map(|s| match s.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (s.clone(), String::new()),
        })
        .collect()
}

fn parse_restart(s: &str) -> Result<RestartPolicy> {
    let (name, count) = match s.split_once(':') {
        Some((n, c)) => (n, Some(c)),
        None => (s, None),
    };
    let name = match name {
        "" | "no" => RestartPolicyNameEnum::NO,
        "always" => RestartPolicyNameEnum::ALWAYS,
        "unless-stopped" => RestartPolicyNameEnum::UNLESS_STOPPED,
        "on-failure" => RestartPolicyNameEnum::ON_FAILURE,
        other => bail!("invalid restart policy: {other}"),
    };
    let max = match count {
        Some(c) => Some(c.parse::<i64>().map_err(|_| {
            anyhow!("invalid restart policy: maximum retry count must be an integer")
        })?),
        None => Some(0),
    };
    Ok(RestartPolicy {
        name: Some(name),
        maximum_retry_count: max,
    })
}

/// `--storage-opt` values as the docker CLI reads them: each `KEY=VALUE`.
fn storage_opts(items: &[String]) -> Result<HashMap<String, String>> {
    let mut map = HashMap::new();
    for item in items {
        match item.split_once('=') {
            Some((k, v)) => map.insert(k.to_string(), v.to_string()),
            None => bail!("invalid storage option"),
        };
    }
    Ok(map)
}

fn parse_ulimit(s: &str) -> Result<ResourcesUlimits> {
    let (name, limits) = s
        .split_once('=')
        .ok_or_else(|| anyhow!("invalid ulimit argument: {s}"))?;
    let (soft, hard) = match limits.split_once(':') {
        Some((a, b)) => (a, b),
        None => (limits, limits),
    };
    let p = |v: &str| {
        v.parse::<i64>()
            .map_err(|_| anyhow!("invalid ulimit argument: {s}"))
    };
    Ok(ResourcesUlimits {
        name: Some(name.to_string()),
        soft: Some(p(soft)?),
        hard: Some(p(hard)?),
    })
}

/// The create body (as JSON: `--mount` entries go as given) and the image from the options.
fn build_create(o: &CreateOpts, detach: bool) -> Result<(serde_json::Value, String)> {
    let mounts = o
        .mount
        .iter()
        .map(|m| super::mount::parse(m))
        .collect::<Result<Vec<_>>>()?;
    let image = o.args[0].clone();
    let cmd: Vec<String> = o.args[1..].to_vec();
    let attach_all = !detach && o.attach.is_empty();
    let attach = |s: &str| attach_all || o.attach.iter().any(|a| a.eq_ignore_ascii_case(s));
    let (stdin, stdout, stderr) = if detach {
        (false, false, false)
    } else {
        (
            o.interactive && (attach_all || attach("stdin")),
            attach("stdout"),
            attach("stderr"),
        )
    };
    let mut binds = Vec::new();
    let mut volumes: Vec<String> = Vec::new();
    for v in &o.volume {
        if v.contains(':') {
            binds.push(v.clone());
        } else {
            volumes.push(v.clone());
        }
    }
    let mut tmpfs = HashMap::new();
    for t in &o.tmpfs {
        match t.split_once(':') {
            Some((p, opts)) => tmpfs.insert(p.to_string(), opts.to_string()),
            None => tmpfs.insert(t.clone(), String::new()),
        };
    }
    let mut exposed: Vec<String> = Vec::new();
    let mut port_bindings: HashMap<String, Option<Vec<berth_api::models::PortBinding>>> =
        HashMap::new();
    for e in &o.expose {
        let k = if e.contains('/') {
            e.clone()
        } else {
            format!("{e}/tcp")
        };
        if !exposed.contains(&k) {
            exposed.push(k);
        }
    }
    for p in &o.publish {
        // [ip:][hostPort:]containerPort[/proto]
        let (spec, proto) = match p.rsplit_once('/') {
            Some((s, pr)) => (s, pr),
            None => (p.as_str(), "tcp"),
        };
        let parts: Vec<&str> = spec.split(':').collect();
        let (ip, hp, cp) = match parts.as_slice() {
            [cp] => ("", "", *cp),
            [hp, cp] => ("", *hp, *cp),
            [ip, hp, cp] => (*ip, *hp, *cp),
            _ => bail!("invalid port format: {p}"),
        };
        let key = format!("{cp}/{proto}");
        if !exposed.contains(&key) {
            exposed.push(key.clone());
        }
        port_bindings
            .entry(key)
            .or_insert_with(|| Some(Vec::new()))
            .get_or_insert_with(Vec::new)
            .push(berth_api::models::PortBinding {
                host_ip: Some(ip.to_string()),
                host_port: Some(hp.to_string()),
            });
    }
    let memory = o.memory.as_deref().map(fmt::ram_in_bytes).transpose()?;
    let memory_swap = match o.memory_swap.as_deref() {
        Some("-1") => Some(-1),
        Some(s) => Some(fmt::ram_in_bytes(s)?),
        None => None,
    };
    let shm = o.shm_size.as_deref().map(fmt::ram_in_bytes).transpose()?;
    let ulimits = o
        .ulimit
        .iter()
        .map(|u| parse_ulimit(u))
        .collect::<Result<Vec<_>>>()?;
    let tty_size = if o.tty {
        crate::term::size()
            .map(|(r, c)| vec![r as usize, c as usize])
            .unwrap_or_else(|| vec![0, 0])
    } else {
        vec![0, 0]
    };
    let network = o.network.clone().unwrap_or_else(|| "default".to_string());
    let host_config = HostConfig {
        binds: Some(binds),
        network_mode: Some(network.clone()),
        restart_policy: Some(parse_restart(&o.restart)?),
        auto_remove: Some(o.rm),
        console_size: Some(tty_size),
        cap_add: (!o.cap_add.is_empty()).then(|| o.cap_add.clone()),
        cap_drop: (!o.cap_drop.is_empty()).then(|| o.cap_drop.clone()),
        privileged: Some(o.privileged),
        readonly_rootfs: Some(o.read_only),
        security_opt: (!o.security_opt.is_empty()).then(|| o.security_opt.clone()),
        memory: Some(memory.unwrap_or(0)),
        memory_swap: Some(memory_swap.unwrap_or(0)),
        memory_swappiness: Some(-1),
        nano_cpus: Some(o.cpus.map(|c| (c * 1e9) as i64).unwrap_or(0)),
        cpu_shares: Some(o.cpu_shares.unwrap_or(0)),
        cpuset_cpus: Some(o.cpuset_cpus.clone().unwrap_or_default()),
        pids_limit: o.pids_limit,
        ulimits: Some(ulimits),
        init: o.init.then_some(true),
        shm_size: Some(shm.unwrap_or(0)),
        sysctls: (!o.sysctl.is_empty()).then(|| kv_map(&o.sysctl)),
        tmpfs: (!tmpfs.is_empty()).then_some(tmpfs),
        log_config: Some(HostConfigLogConfig {
            typ: Some(o.log_driver.clone().unwrap_or_default()),
            config: Some(kv_map(&o.log_opt)),
        }),
        port_bindings: (!port_bindings.is_empty()).then_some(port_bindings),
        publish_all_ports: Some(o.publish_all),
        dns: Some(o.dns.clone()),
        dns_search: Some(o.dns_search.clone()),
        dns_options: Some(o.dns_option.clone()),
        extra_hosts: (!o.add_host.is_empty()).then(|| o.add_host.clone()),
        links: (!o.link.is_empty()).then(|| o.link.clone()),
        runtime: o.runtime.clone(),
        volume_driver: o.volume_driver.clone(),
        storage_opt: (!o.storage_opt.is_empty())
            .then(|| storage_opts(&o.storage_opt))
            .transpose()?,
        ..Default::default()
    };
    let mut endpoints = HashMap::new();
    let endpoint = super::netopts::endpoint(o, &network)?;
    endpoints.insert(network, endpoint);
    let body = ContainerCreateBody {
        hostname: Some(o.hostname.clone().unwrap_or_default()),
        domainname: Some(String::new()),
        user: Some(o.user.clone().unwrap_or_default()),
        attach_stdin: Some(stdin),
        attach_stdout: Some(stdout),
        attach_stderr: Some(stderr),
        exposed_ports: (!exposed.is_empty()).then_some(exposed),
        tty: Some(o.tty),
        open_stdin: Some(o.interactive),
        stdin_once: Some(stdin),
        env: Some(env_list(&o.env, &o.env_file)?),
        cmd: (!cmd.is_empty()).then_some(cmd),
        image: Some(image.clone()),
        volumes: Some(volumes),
        working_dir: Some(o.workdir.clone().unwrap_or_default()),
        entrypoint: o.entrypoint.as_ref().map(|e| {
            if e.is_empty() {
                Vec::new()
            } else {
                vec![e.clone()]
            }
        }),
        labels: Some(kv_map(&o.label)),
        stop_signal: o.stop_signal.clone(),
        stop_timeout: o.stop_timeout,
        healthcheck: healthcheck(o)?,
        host_config: Some(host_config),
        networking_config: Some(NetworkingConfig {
            endpoints_config: Some(endpoints),
        }),
        ..Default::default()
    };
    let mut body = serde_json::to_value(&body)?;
    if let Some(mac) = &o.mac_address {
        // `Config.MacAddress` (API < 1.44): the create models have no such field.
        body["MacAddress"] = serde_json::Value::String(mac.clone());
    }
    if !mounts.is_empty() {
        body["HostConfig"]["Mounts"] = serde_json::Value::Array(mounts);
    }
    Ok((body, image))
}

/// `--health-*` and `--no-healthcheck`, checked as the docker CLI checks them.
fn healthcheck(o: &CreateOpts) -> Result<Option<berth_api::models::HealthConfig>> {
    let durations = [
        o.health_interval,
        o.health_timeout,
        o.health_start_period,
        o.health_start_interval,
    ];
    let tuned = durations.iter().any(Option::is_some) || o.health_retries.is_some();
    if o.no_healthcheck {
        if o.health_cmd.is_some() || tuned {
            bail!("--no-healthcheck conflicts with --health-* options");
        }
        return Ok(Some(berth_api::models::HealthConfig {
            test: Some(vec!["NONE".to_string()]),
            ..Default::default()
        }));
    }
    if o.health_cmd.is_none() && !tuned {
        return Ok(None);
    }
    for (value, flag) in [
        (o.health_interval, "--health-interval"),
        (o.health_timeout, "--health-timeout"),
        (o.health_start_period, "--health-start-period"),
        (o.health_start_interval, "--health-start-interval"),
    ] {
        if value.is_some_and(|v| v < 0) {
            bail!("{flag} cannot be negative");
        }
    }
    if o.health_retries.is_some_and(|r| r < 0) {
        bail!("--health-retries cannot be negative");
    }
    Ok(Some(berth_api::models::HealthConfig {
        test: o
            .health_cmd
            .as_ref()
            .map(|c| vec!["CMD-SHELL".to_string(), c.clone()]),
        interval: o.health_interval,
        timeout: o.health_timeout,
        retries: o.health_retries,
        start_period: o.health_start_period,
        start_interval: o.health_start_interval,
    }))
}

/// A Go duration (`300ms`, `1.5s`, `1m30s`, `-2h`) in nanoseconds, as the docker CLI's flags
/// take it.
pub(crate) fn go_duration(text: &str) -> std::result::Result<i64, String> {
    let invalid = || format!("time: invalid duration \"{text}\"");
    let (negative, mut rest) = match text.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    if rest == "0" {
        return Ok(0);
    }
    if rest.is_empty() {
        return Err(invalid());
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(|| format!("time: missing unit in duration \"{text}\""))?;
        let (number, after) = rest.split_at(number_len);
        let value: f64 = number.parse().map_err(|_| invalid())?;
        let unit_len = after
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after.len());
        let (unit, after) = after.split_at(unit_len);
        let scale = match unit {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            "" => return Err(format!("time: missing unit in duration \"{text}\"")),
            _ => {
                return Err(format!(
                    "time: unknown unit \"{unit}\" in duration \"{text}\""
                ))
            }
        };
        total += value * scale;
        rest = after;
    }
    if total > i64::MAX as f64 {
        return Err(invalid());
    }
    let nanos = total.round() as i64;
    Ok(if negative { -nanos } else { nanos })
}

/// Creates the container, pulling the image when the daemon says 404 (as `docker run`).
pub(super) async fn create_container(
    client: &Client,
    o: &CreateOpts,
    detach: bool,
) -> Result<String> {
    let (body, image) = build_create(o, detach)?;
    let mut params: Vec<(&str, String)> = Vec::new();
    if let Some(n) = &o.name {
        params.push(("name", n.clone()));
    }
    if let Some(p) = &o.platform {
        params.push(("platform", p.clone()));
    }
    let query = encode_query(&params);
    if o.pull == "always" {
        crate::image::pull_image(client, &image, o.platform.as_deref(), o.quiet, true).await?;
    }
    #[derive(serde::Deserialize)]
    struct Created {
        #[serde(rename = "Id")]
        id: String,
        #[serde(rename = "Warnings", default)]
        warnings: Option<Vec<String>>,
    }
    let created: Created = match client
        .json(Method::POST, "/containers/create", &query, Some(&body))
        .await
    {
        Ok(c) => c,
        Err(e) if e.is_not_found() && o.pull != "never" && o.pull != "always" => {
            eprintln!(
                "Unable to find image '{}' locally",
                crate::image::familiar_with_tag(&image)
            );
            crate::image::pull_image(client, &image, o.platform.as_deref(), o.quiet, true).await?;
            client
                .json(Method::POST, "/containers/create", &query, Some(&body))
                .await?
        }
        Err(e) => return Err(e.into()),
    };
    for w in created.warnings.unwrap_or_default() {
        eprintln!("WARNING: {w}");
    }
    Ok(created.id)
}

/// Wraps errors of run/create as `berth: MESSAGE` with exit status 125.
pub(super) fn run_error(cmd: &str, e: anyhow::Error) -> anyhow::Error {
    if e.downcast_ref::<crate::StatusError>().is_some() {
        return e;
    }
    status(
        125,
        format!("berth: {e:#}\n\nRun 'berth {cmd} --help' for more information"),
    )
}

pub async fn create_cmd(host: &str, o: &CreateCmd) -> Result<i32> {
    let client = connect(host).await.map_err(|e| run_error("create", e))?;
    let id = create_container(&client, &o.create, true)
        .await
        .map_err(|e| run_error("create", e))?;
    println!("{id}");
    Ok(0)
}

#[cfg(test)]
mod duration_tests {
    use super::go_duration;

    #[test]
    fn go_durations() {
        assert_eq!(go_duration("300ms"), Ok(300_000_000));
        assert_eq!(go_duration("1m30s"), Ok(90_000_000_000));
        assert_eq!(go_duration("1.5s"), Ok(1_500_000_000));
        assert_eq!(go_duration("0"), Ok(0));
        assert_eq!(go_duration("-2h"), Ok(-7_200_000_000_000));
        assert_eq!(
            go_duration("5"),
            Err("time: missing unit in duration \"5\"".into())
        );
        assert_eq!(
            go_duration("3x"),
            Err("time: unknown unit \"x\" in duration \"3x\"".into())
        );
        assert!(go_duration("").is_err());
        assert!(go_duration("s").is_err());
        assert!(go_duration("1..2s").is_err());
        assert!(go_duration("99999999999999h").is_err());
    }
}
