//! Container commands: run, create, start, attach, exec, logs, ps, inspect and the rest.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, Context as _, Result};
use berth_api::client::{
    empty_body, encode_query, read_all, BodyStream, Client, ClientError, HijackReader,
};
use berth_api::models::{
    ContainerCreateBody, EndpointSettings, ExecConfig, HostConfig, HostConfigLogConfig,
    NetworkingConfig, ResourcesUlimits, RestartPolicy, RestartPolicyNameEnum,
};
use clap::Args;
use hyper::Method;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::unix::OwnedWriteHalf;

use crate::fmt::{self, ellipsis, go_quote, human_size, short_id, since_unix};
use crate::{connect, status};

// --- options ------------------------------------------------------------------------------------

#[derive(Args, Debug, Clone)]
pub struct CreateOpts {
    /// Assign a name to the container
    #[arg(long)]
    name: Option<String>,
    /// Keep STDIN open even if not attached
    #[arg(short, long)]
    interactive: bool,
    /// Allocate a pseudo-TTY
    #[arg(short, long)]
    tty: bool,
    /// Automatically remove the container and its associated anonymous volumes when it exits
    #[arg(long)]
    rm: bool,
    /// Set environment variables
    #[arg(short, long = "env")]
    env: Vec<String>,
    /// Read in a file of environment variables
    #[arg(long = "env-file")]
    env_file: Vec<String>,
    /// Working directory inside the container
    #[arg(short, long)]
    workdir: Option<String>,
    /// Username or UID (format: "<name|uid>[:<group|gid>]")
    #[arg(short, long)]
    user: Option<String>,
    /// Overwrite the default ENTRYPOINT of the image
    #[arg(long)]
    entrypoint: Option<String>,
    /// Set meta data on a container
    #[arg(short, long = "label")]
    label: Vec<String>,
    /// Container host name
    #[arg(long)]
    hostname: Option<String>,
    /// Memory limit
    #[arg(short, long)]
    memory: Option<String>,
    /// Swap limit equal to memory plus swap: '-1' to enable unlimited swap
    #[arg(long = "memory-swap", allow_hyphen_values = true)]
    memory_swap: Option<String>,
    /// Number of CPUs
    #[arg(long)]
    cpus: Option<f64>,
    /// CPU shares (relative weight)
    #[arg(short = 'c', long = "cpu-shares")]
    cpu_shares: Option<i64>,
    /// CPUs in which to allow execution (0-3, 0,1)
    #[arg(long = "cpuset-cpus")]
    cpuset_cpus: Option<String>,
    /// Tune container pids limit (set -1 for unlimited)
    #[arg(long = "pids-limit", allow_hyphen_values = true)]
    pids_limit: Option<i64>,
    /// Mount the container's root filesystem as read only
    #[arg(long = "read-only")]
    read_only: bool,
    /// Add Linux capabilities
    #[arg(long = "cap-add")]
    cap_add: Vec<String>,
    /// Drop Linux capabilities
    #[arg(long = "cap-drop")]
    cap_drop: Vec<String>,
    /// Give extended privileges to this container
    #[arg(long)]
    privileged: bool,
    /// Security Options
    #[arg(long = "security-opt")]
    security_opt: Vec<String>,
    /// Ulimit options
    #[arg(long)]
    ulimit: Vec<String>,
    /// Restart policy to apply when a container exits
    #[arg(long, default_value = "no")]
    restart: String,
    /// Run an init inside the container that forwards signals and reaps processes
    #[arg(long)]
    init: bool,
    /// Size of /dev/shm
    #[arg(long = "shm-size")]
    shm_size: Option<String>,
    /// Sysctl options
    #[arg(long)]
    sysctl: Vec<String>,
    /// Mount a tmpfs directory
    #[arg(long)]
    tmpfs: Vec<String>,
    /// Bind mount a volume
    #[arg(short, long = "volume")]
    volume: Vec<String>,
    /// Logging driver for the container
    #[arg(long = "log-driver")]
    log_driver: Option<String>,
    /// Log driver options
    #[arg(long = "log-opt")]
    log_opt: Vec<String>,
    /// Signal to stop the container
    #[arg(long = "stop-signal")]
    stop_signal: Option<String>,
    /// Timeout (in seconds) to stop a container
    #[arg(long = "stop-timeout")]
    stop_timeout: Option<i64>,
    /// Connect a container to a network
    #[arg(long = "network", alias = "net")]
    network: Option<String>,
    /// Set platform if server is multi-platform capable
    #[arg(long)]
    platform: Option<String>,
    /// Pull image before running ("always", "missing", "never")
    #[arg(long, default_value = "missing")]
    pull: String,
    /// Suppress the pull output
    #[arg(short, long)]
    quiet: bool,
    /// Publish a container's port(s) to the host
    #[arg(short, long = "publish")]
    publish: Vec<String>,
    /// Expose a port or a range of ports
    #[arg(long)]
    expose: Vec<String>,
    /// Attach to STDIN, STDOUT or STDERR
    #[arg(short, long)]
    attach: Vec<String>,
    /// Override the key sequence for detaching a container
    #[arg(long = "detach-keys")]
    detach_keys: Option<String>,
    /// The image, then the command and its arguments
    #[arg(
        required = true,
        trailing_var_arg = true,
        value_name = "IMAGE [COMMAND] [ARG...]"
    )]
    args: Vec<String>,
}

#[derive(Args, Debug)]
pub struct RunOpts {
    /// Run container in background and print container ID
    #[arg(short, long)]
    detach: bool,
    #[command(flatten)]
    create: CreateOpts,
}

impl RunOpts {
    /// The image, the command and its arguments.
    #[cfg(test)]
    pub fn args(&self) -> &[String] {
        &self.create.args
    }
}

#[derive(Args, Debug)]
pub struct CreateCmd {
    #[command(flatten)]
    create: CreateOpts,
}

#[derive(Args, Debug)]
pub struct StartOpts {
    /// Attach STDOUT/STDERR and forward signals
    #[arg(short, long)]
    attach: bool,
    /// Attach container's STDIN
    #[arg(short, long)]
    interactive: bool,
    #[arg(required = true)]
    containers: Vec<String>,
}

#[derive(Args, Debug)]
pub struct StopOpts {
    /// Signal to send to the container
    #[arg(short, long)]
    signal: Option<String>,
    /// Seconds to wait before killing the container
    #[arg(short, long = "time", alias = "timeout", allow_hyphen_values = true)]
    time: Option<i64>,
    #[arg(required = true)]
    containers: Vec<String>,
}

#[derive(Args, Debug)]
pub struct KillOpts {
    /// Signal to send to the container
    #[arg(short, long)]
    signal: Option<String>,
    #[arg(required = true)]
    containers: Vec<String>,
}

#[derive(Args, Debug)]
pub struct RmOpts {
    /// Force the removal of a running container (uses SIGKILL)
    #[arg(short, long)]
    force: bool,
    /// Remove anonymous volumes associated with the container
    #[arg(short, long)]
    volumes: bool,
    /// Remove the specified link
    #[arg(short, long)]
    link: bool,
    #[arg(required = true)]
    containers: Vec<String>,
}

#[derive(Args, Debug)]
pub struct NamesOpts {
    #[arg(required = true)]
    containers: Vec<String>,
}

#[derive(Args, Debug)]
pub struct RenameOpts {
    container: String,
    new_name: String,
}

#[derive(Args, Debug)]
pub struct AttachOpts {
    /// Do not attach STDIN
    #[arg(long = "no-stdin")]
    no_stdin: bool,
    /// Proxy all received signals to the process
    #[arg(long = "sig-proxy", default_value_t = true)]
    sig_proxy: bool,
    container: String,
}

#[derive(Args, Debug)]
pub struct TopOpts {
    container: String,
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    ps_args: Vec<String>,
}

#[derive(Args, Debug)]
pub struct StatsOpts {
    /// Show all containers (default shows just running)
    #[arg(short, long)]
    all: bool,
    /// Disable streaming stats and only pull the first result
    #[arg(long = "no-stream")]
    no_stream: bool,
    /// Do not truncate output
    #[arg(long = "no-trunc")]
    no_trunc: bool,
    /// Format output using a custom template
    #[arg(long)]
    format: Option<String>,
    containers: Vec<String>,
}

#[derive(Args, Debug)]
pub struct CpOpts {
    /// Archive mode (copy all uid/gid information)
    #[arg(short, long)]
    archive: bool,
    /// Always follow symbol link in SRC_PATH
    #[arg(short = 'L', long = "follow-link")]
    follow_link: bool,
    /// Suppress progress output during copy
    #[arg(short, long)]
    quiet: bool,
    src: String,
    dest: String,
}

#[derive(Args, Debug)]
pub struct ExportOpts {
    /// Write to a file, instead of STDOUT
    #[arg(short, long)]
    output: Option<String>,
    container: String,
}

#[derive(Args, Debug)]
pub struct CommitOpts {
    /// Author
    #[arg(short, long)]
    author: Option<String>,
    /// Apply Dockerfile instruction to the created image
    #[arg(short, long)]
    change: Vec<String>,
    /// Commit message
    #[arg(short, long)]
    message: Option<String>,
    /// Pause container during commit
    #[arg(short, long, default_value_t = true)]
    pause: bool,
    container: String,
    repository: Option<String>,
}

#[derive(Args, Debug)]
pub struct PsOpts {
    /// Show all containers (default shows just running)
    #[arg(short, long)]
    all: bool,
    /// Only display container IDs
    #[arg(short, long)]
    quiet: bool,
    /// Show n last created containers (includes all states)
    #[arg(short = 'n', long = "last", default_value_t = -1, allow_hyphen_values = true)]
    last: i64,
    /// Show the latest created container (includes all states)
    #[arg(short, long)]
    latest: bool,
    /// Display total file sizes
    #[arg(short, long)]
    size: bool,
    /// Don't truncate output
    #[arg(long = "no-trunc")]
    no_trunc: bool,
    /// Filter output based on conditions provided
    #[arg(short, long = "filter")]
    filter: Vec<String>,
    /// Format output using a custom template
    #[arg(long)]
    format: Option<String>,
}

#[derive(Args, Debug)]
pub struct LogsOpts {
    /// Follow log output
    #[arg(short, long)]
    follow: bool,
    /// Number of lines to show from the end of the logs
    #[arg(short = 'n', long, default_value = "all")]
    tail: String,
    /// Show logs since timestamp or relative (e.g. 42m for 42 minutes)
    #[arg(long)]
    since: Option<String>,
    /// Show logs before a timestamp or relative (e.g. 42m for 42 minutes)
    #[arg(long)]
    until: Option<String>,
    /// Show timestamps
    #[arg(short, long)]
    timestamps: bool,
    /// Show extra details provided to logs
    #[arg(long)]
    details: bool,
    container: String,
}

#[derive(Args, Debug)]
pub struct ExecOpts {
    /// Detached mode: run command in the background
    #[arg(short, long)]
    detach: bool,
    /// Keep STDIN open even if not attached
    #[arg(short, long)]
    interactive: bool,
    /// Allocate a pseudo-TTY
    #[arg(short, long)]
    tty: bool,
    /// Username or UID (format: "<name|uid>[:<group|gid>]")
    #[arg(short, long)]
    user: Option<String>,
    /// Working directory inside the container
    #[arg(short, long)]
    workdir: Option<String>,
    /// Set environment variables
    #[arg(short, long = "env")]
    env: Vec<String>,
    /// Read in a file of environment variables
    #[arg(long = "env-file")]
    env_file: Vec<String>,
    /// Give extended privileges to the command
    #[arg(long)]
    privileged: bool,
    /// The container, then the command and its arguments
    #[arg(required = true, num_args = 2.., trailing_var_arg = true, value_name = "CONTAINER COMMAND [ARG...]")]
    args: Vec<String>,
}

#[derive(Args, Debug)]
pub struct InspectOpts {
    /// Format output using a custom template
    #[arg(short, long)]
    format: Option<String>,
    /// Display total file sizes if the type is container
    #[arg(short, long)]
    size: bool,
    /// Return JSON for specified type
    #[arg(long = "type")]
    kind: Option<String>,
    #[arg(required = true)]
    names: Vec<String>,
}

// --- helpers ------------------------------------------------------------------------------------

fn now_unix() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// `KEY=VALUE` list to a map (`KEY` alone maps to "").
fn kv_map(items: &[String]) -> HashMap<String, String> {
    items
        .iter()
        .map(|s| match s.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (s.clone(), String::new()),
        })
        .collect()
}

/// `-e` and `--env-file` as docker reads them: `KEY` alone takes the local value (dropped
/// when unset).
fn env_list(env: &[String], files: &[String]) -> Result<Vec<String>> {
    let mut out = Vec::new();
    let mut push = |e: &str| {
        if e.contains('=') {
            out.push(e.to_string());
        } else if let Ok(v) = std::env::var(e) {
            out.push(format!("{e}={v}"));
        }
    };
    for f in files {
        let text = std::fs::read_to_string(f).with_context(|| format!("open {f}"))?;
        for line in text.lines() {
            let l = line.trim_start();
            if l.is_empty() || l.starts_with('#') {
                continue;
            }
            push(l);
        }
    }
    for e in env {
        push(e);
    }
    Ok(out)
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

/// The create body, the name and the platform from the options.
fn build_create(o: &CreateOpts, detach: bool) -> Result<(ContainerCreateBody, String)> {
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
        ..Default::default()
    };
    let mut endpoints = HashMap::new();
    endpoints.insert(network, EndpointSettings::default());
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
        host_config: Some(host_config),
        networking_config: Some(NetworkingConfig {
            endpoints_config: Some(endpoints),
        }),
        ..Default::default()
    };
    Ok((body, image))
}

/// Creates the container, pulling the image when the daemon says 404 (as `docker run`).
async fn create_container(client: &Client, o: &CreateOpts, detach: bool) -> Result<String> {
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

/// Maps a start error to docker's exit status by its text.
fn start_error_code(msg: &str) -> i32 {
    if msg.contains("executable file not found") || msg.contains("no such file or directory") {
        127
    } else if msg.contains("permission denied") {
        126
    } else {
        125
    }
}

/// Wraps errors of run/create as `berth: MESSAGE` with exit status 125.
fn run_error(cmd: &str, e: anyhow::Error) -> anyhow::Error {
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

/// Copies a container's output to stdout/stderr: raw with a tty, else demultiplexed.
async fn pump_output(mut reader: HijackReader, tty: bool) -> std::io::Result<()> {
    let mut buf = vec![0u8; 32 * 1024];
    if tty {
        loop {
            let n = reader.read(&mut buf).await?;
            if n == 0 {
                return Ok(());
            }
            let mut out = std::io::stdout().lock();
            out.write_all(&buf[..n])?;
            out.flush()?;
        }
    }
    let mut demux = Demux::default();
    loop {
        let n = reader.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        demux.feed(&buf[..n])?;
    }
}

/// Splits stdcopy frames arriving in arbitrary pieces.
#[derive(Default)]
struct Demux {
    pending: Vec<u8>,
}

impl Demux {
    fn feed(&mut self, data: &[u8]) -> std::io::Result<()> {
        self.pending.extend_from_slice(data);
        loop {
            if self.pending.len() < 8 {
                return Ok(());
            }
            let len = u32::from_be_bytes([
                self.pending[4],
                self.pending[5],
                self.pending[6],
                self.pending[7],
            ]) as usize;
            if self.pending.len() < 8 + len {
                return Ok(());
            }
            let payload = &self.pending[8..8 + len];
            match self.pending[0] {
                2 | 3 => {
                    let mut e = std::io::stderr().lock();
                    e.write_all(payload)?;
                    e.flush()?;
                }
                _ => {
                    let mut o = std::io::stdout().lock();
                    o.write_all(payload)?;
                    o.flush()?;
                }
            }
            self.pending.drain(..8 + len);
        }
    }
}

/// Copies local stdin into the hijacked connection, then half-closes it. With a tty, ctrl-p
/// ctrl-q detaches (returns true).
async fn pump_input(mut writer: OwnedWriteHalf, tty: bool) -> bool {
    let mut stdin = tokio::io::stdin();
    let mut buf = vec![0u8; 8192];
    let mut saw_ctrl_p = false;
    loop {
        let n = match stdin.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let mut chunk = &buf[..n];
        if tty {
            let mut out = Vec::with_capacity(n);
            for &b in chunk {
                if saw_ctrl_p {
                    saw_ctrl_p = false;
                    if b == 0x11 {
                        let _ = writer.write_all(&out).await;
                        return true;
                    }
                    out.push(0x10);
                }
                if b == 0x10 {
                    saw_ctrl_p = true;
                    continue;
                }
                out.push(b);
            }
            if writer.write_all(&out).await.is_err() {
                return false;
            }
            continue;
        }
        while !chunk.is_empty() {
            match writer.write(chunk).await {
                Ok(0) | Err(_) => return false,
                Ok(w) => chunk = &chunk[w..],
            }
        }
    }
    let _ = writer.shutdown().await;
    false
}

async fn resize(client: &Client, path: &str) {
    if let Some((h, w)) = crate::term::size() {
        let q = encode_query(&[("h", h.to_string()), ("w", w.to_string())]);
        let _ = client.call(Method::POST, path, &q).await;
    }
}

/// Sends the size after start and on every SIGWINCH.
fn watch_resize(client: Client, path: String) {
    tokio::spawn(async move {
        resize(&client, &path).await;
        if let Ok(mut sig) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::window_change())
        {
            while sig.recv().await.is_some() {
                resize(&client, &path).await;
            }
        }
    });
}

/// Forwards the signals a user sends to the CLI to the container (docker's `--sig-proxy`).
fn proxy_signals(client: Client, id: String) {
    use tokio::signal::unix::{signal, SignalKind};
    let kinds = [
        (SignalKind::interrupt(), "INT"),
        (SignalKind::terminate(), "TERM"),
        (SignalKind::hangup(), "HUP"),
        (SignalKind::quit(), "QUIT"),
        (SignalKind::user_defined1(), "USR1"),
        (SignalKind::user_defined2(), "USR2"),
    ];
    for (kind, name) in kinds {
        let Ok(mut sig) = signal(kind) else {
            continue;
        };
        let client = client.clone();
        let id = id.clone();
        tokio::spawn(async move {
            while sig.recv().await.is_some() {
                let _ = client
                    .call(
                        Method::POST,
                        &format!("/containers/{id}/kill"),
                        &encode_query(&[("signal", name)]),
                    )
                    .await;
            }
        });
    }
}

/// docker's check: `-i -t` needs a terminal on stdin.
fn check_tty(interactive: bool, tty: bool) -> Result<()> {
    if interactive && tty && !std::io::stdin().is_terminal() {
        return Err(status(1, "the input device is not a TTY".to_string()));
    }
    Ok(())
}

struct Attached {
    output: tokio::task::JoinHandle<std::io::Result<()>>,
    input: Option<tokio::task::JoinHandle<bool>>,
    _raw: Option<crate::term::RawMode>,
}

/// Attaches to a container (the hijack), before it starts.
async fn attach_streams(
    client: &Client,
    id: &str,
    stdin: bool,
    stdout: bool,
    stderr: bool,
    tty: bool,
) -> Result<Attached> {
    let mut q = vec![("stream", "1")];
    if stdin {
        q.push(("stdin", "1"));
    }
    if stdout {
        q.push(("stdout", "1"));
    }
    if stderr {
        q.push(("stderr", "1"));
    }
    let hj = client
        .hijack(
            &format!("/containers/{id}/attach"),
            &encode_query(&q),
            None::<&()>,
        )
        .await?;
    let (reader, mut writer) = hj.into_split();
    let raw = if tty && stdin && std::io::stdin().is_terminal() {
        Some(crate::term::RawMode::enable()?)
    } else {
        None
    };
    let input = if stdin {
        Some(tokio::spawn(pump_input(writer, tty)))
    } else {
        let _ = writer.shutdown().await;
        None
    };
    let output = tokio::spawn(pump_output(reader, tty));
    Ok(Attached {
        output,
        input,
        _raw: raw,
    })
}

impl Attached {
    /// Until the output ends (or the user detaches); true if detached.
    async fn finish(mut self) -> bool {
        let detached = match self.input.take() {
            Some(mut input) => {
                let mut output = self.output;
                tokio::select! {
                    _ = &mut output => false,
                    d = &mut input => {
                        if matches!(d, Ok(true)) {
                            true
                        } else {
                            let _ = output.await;
                            false
                        }
                    }
                }
            }
            None => {
                let _ = self.output.await;
                false
            }
        };
        drop(self._raw.take());
        detached
    }
}

async fn wait_status(resp: hyper::Response<hyper::body::Incoming>) -> Result<i32> {
    let mut s = BodyStream::new(resp);
    let v: Option<Value> = s.next_json().await?;
    let v = v.unwrap_or(Value::Null);
    if let Some(msg) = v
        .get("Error")
        .and_then(|e| e.get("Message"))
        .and_then(Value::as_str)
    {
        if !msg.is_empty() {
            bail!("{msg}");
        }
    }
    Ok(v.get("StatusCode").and_then(Value::as_i64).unwrap_or(0) as i32)
}

pub async fn run(host: &str, o: &RunOpts) -> Result<i32> {
    let c = &o.create;
    if !o.detach {
        check_tty(c.interactive, c.tty)?;
    }
    let client = connect(host).await.map_err(|e| run_error("run", e))?;
    let id = create_container(&client, c, o.detach)
        .await
        .map_err(|e| run_error("run", e))?;
    let (stdin, stdout, stderr) = if o.detach {
        (false, false, false)
    } else {
        let all = c.attach.is_empty();
        let has = |s: &str| all || c.attach.iter().any(|a| a.eq_ignore_ascii_case(s));
        (
            c.interactive && (all || has("stdin")),
            has("stdout"),
            has("stderr"),
        )
    };
    let attached = if stdin || stdout || stderr {
        Some(
            attach_streams(&client, &id, stdin, stdout, stderr, c.tty)
                .await
                .map_err(|e| run_error("run", e))?,
        )
    } else {
        None
    };
    let condition = if c.rm { "removed" } else { "next-exit" };
    let wait_resp = client
        .request(
            Method::POST,
            &format!("/containers/{id}/wait"),
            &encode_query(&[("condition", condition)]),
            &[],
            empty_body(),
        )
        .await
        .map_err(|e| run_error("run", e.into()))?;
    if let Err(e) = client
        .call(Method::POST, &format!("/containers/{id}/start"), "")
        .await
    {
        drop(attached);
        let code = start_error_code(&e.message());
        return Err(status(
            code,
            format!("berth: {e}\n\nRun 'berth run --help' for more information"),
        ));
    }
    if o.detach {
        drop(wait_resp);
        println!("{id}");
        return Ok(0);
    }
    if c.tty && stdin {
        watch_resize(client.clone(), format!("/containers/{id}/resize"));
    }
    if !c.tty {
        proxy_signals(client.clone(), id.clone());
    }
    let detached = match attached {
        Some(a) => a.finish().await,
        None => false,
    };
    if detached {
        return Ok(0);
    }
    let code = wait_status(wait_resp)
        .await
        .map_err(|e| status(125, format!("berth: {e:#}")))?;
    Ok(code)
}

pub async fn start(host: &str, o: &StartOpts) -> Result<i32> {
    let client = connect(host).await?;
    if o.attach || o.interactive {
        if o.containers.len() > 1 {
            bail!("you cannot start and attach multiple containers at once");
        }
        let name = &o.containers[0];
        let info: Value = client
            .get_json(&format!("/containers/{name}/json"), "")
            .await?;
        let id = info["Id"].as_str().unwrap_or(name).to_string();
        let tty = info["Config"]["Tty"].as_bool().unwrap_or(false);
        let open_stdin = info["Config"]["OpenStdin"].as_bool().unwrap_or(false);
        let stdin = o.interactive && open_stdin;
        let attached = attach_streams(&client, &id, stdin, true, true, tty).await?;
        let wait_resp = client
            .request(
                Method::POST,
                &format!("/containers/{id}/wait"),
                "condition=next-exit",
                &[],
                empty_body(),
            )
            .await?;
        if let Err(e) = client
            .call(Method::POST, &format!("/containers/{id}/start"), "")
            .await
        {
            drop(attached);
            return Err(status(start_error_code(&e.message()), e.to_string()));
        }
        if tty && stdin {
            watch_resize(client.clone(), format!("/containers/{id}/resize"));
        }
        if !tty {
            proxy_signals(client.clone(), id.clone());
        }
        if attached.finish().await {
            return Ok(0);
        }
        return wait_status(wait_resp).await;
    }
    let mut failed = false;
    for name in &o.containers {
        match client
            .call(Method::POST, &format!("/containers/{name}/start"), "")
            .await
        {
            Ok(()) => println!("{name}"),
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

async fn for_each(
    client: &Client,
    names: &[String],
    f: impl Fn(&str) -> (Method, String, String),
) -> Result<i32> {
    let mut failed = false;
    for name in names {
        let (m, path, q) = f(name);
        match client.call(m, &path, &q).await {
            Ok(()) => println!("{name}"),
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

pub async fn stop(host: &str, o: &StopOpts, restart: bool) -> Result<i32> {
    let client = connect(host).await?;
    let mut q = Vec::new();
    if let Some(s) = &o.signal {
        q.push(("signal", s.clone()));
    }
    if let Some(t) = o.time {
        q.push(("t", t.to_string()));
    }
    let q = encode_query(&q);
    let verb = if restart { "restart" } else { "stop" };
    for_each(&client, &o.containers, |n| {
        (Method::POST, format!("/containers/{n}/{verb}"), q.clone())
    })
    .await
}

pub async fn kill(host: &str, o: &KillOpts) -> Result<i32> {
    let client = connect(host).await?;
    let q = match &o.signal {
        Some(s) => encode_query(&[("signal", s)]),
        None => String::new(),
    };
    for_each(&client, &o.containers, |n| {
        (Method::POST, format!("/containers/{n}/kill"), q.clone())
    })
    .await
}

pub async fn rm(host: &str, o: &RmOpts) -> Result<i32> {
    let client = connect(host).await?;
    let mut q = Vec::new();
    if o.force {
        q.push(("force", "1"));
    }
    if o.volumes {
        q.push(("v", "1"));
    }
    if o.link {
        q.push(("link", "1"));
    }
    let q = encode_query(&q);
    let mut failed = false;
    for name in &o.containers {
        match client
            .call(Method::DELETE, &format!("/containers/{name}"), &q)
            .await
        {
            Ok(()) => println!("{name}"),
            // docker rm -f of a missing container is no error
            Err(e) if o.force && e.is_not_found() => {}
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

pub async fn simple(host: &str, o: &NamesOpts, verb: &str) -> Result<i32> {
    let client = connect(host).await?;
    for_each(&client, &o.containers, |n| {
        (
            Method::POST,
            format!("/containers/{n}/{verb}"),
            String::new(),
        )
    })
    .await
}

pub async fn rename(host: &str, o: &RenameOpts) -> Result<i32> {
    let client = connect(host).await?;
    client
        .call(
            Method::POST,
            &format!("/containers/{}/rename", o.container),
            &encode_query(&[("name", &o.new_name)]),
        )
        .await?;
    Ok(0)
}

pub async fn wait(host: &str, o: &NamesOpts) -> Result<i32> {
    let client = connect(host).await?;
    let mut failed = false;
    for n in &o.containers {
        let r = async {
            let resp = client
                .request(
                    Method::POST,
                    &format!("/containers/{n}/wait"),
                    "",
                    &[],
                    empty_body(),
                )
                .await?;
            wait_status(resp).await
        }
        .await;
        match r {
            Ok(code) => println!("{code}"),
            Err(e) => {
                eprintln!("{e:#}");
                failed = true;
            }
        }
    }
    if failed {
        return Err(status(1, None));
    }
    Ok(0)
}

pub async fn attach_cmd(host: &str, o: &AttachOpts) -> Result<i32> {
    let client = connect(host).await?;
    let info: Value = client
        .get_json(&format!("/containers/{}/json", o.container), "")
        .await?;
    if !info["State"]["Running"].as_bool().unwrap_or(false) {
        bail!("You cannot attach to a stopped container, start it first");
    }
    let id = info["Id"].as_str().unwrap_or(&o.container).to_string();
    let tty = info["Config"]["Tty"].as_bool().unwrap_or(false);
    let stdin = !o.no_stdin && info["Config"]["OpenStdin"].as_bool().unwrap_or(false);
    check_tty(stdin, tty)?;
    let attached = attach_streams(&client, &id, stdin, true, true, tty).await?;
    if tty && stdin {
        watch_resize(client.clone(), format!("/containers/{id}/resize"));
    }
    if !tty && o.sig_proxy {
        proxy_signals(client.clone(), id.clone());
    }
    if attached.finish().await {
        return Ok(0);
    }
    let info: Value = client
        .get_json(&format!("/containers/{id}/json"), "")
        .await?;
    Ok(info["State"]["ExitCode"].as_i64().unwrap_or(0) as i32)
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

pub async fn exec(host: &str, o: &ExecOpts) -> Result<i32> {
    let client = connect(host).await?;
    let container = &o.args[0];
    let cmd = o.args[1..].to_vec();
    if !o.detach {
        check_tty(o.interactive, o.tty)?;
    }
    let info: Value = client
        .get_json(&format!("/containers/{container}/json"), "")
        .await?;
    let _ = info;
    let stdin = o.interactive && !o.detach;
    let env = env_list(&o.env, &o.env_file)?;
    let console = if o.tty && !client_version_below(&client, "1.42") {
        crate::term::size().map(|(r, c)| vec![r as usize, c as usize])
    } else {
        None
    };
    let config = ExecConfig {
        user: Some(o.user.clone().unwrap_or_default()),
        privileged: Some(o.privileged),
        tty: Some(o.tty),
        attach_stdin: Some(stdin),
        attach_stderr: Some(!o.detach),
        attach_stdout: Some(!o.detach),
        detach_keys: Some(String::new()),
        env: (!env.is_empty()).then_some(env),
        working_dir: Some(o.workdir.clone().unwrap_or_default()),
        cmd: Some(cmd),
        console_size: console.clone(),
    };
    #[derive(serde::Deserialize)]
    struct Id {
        #[serde(rename = "Id")]
        id: String,
    }
    let created: Id = client
        .json(
            Method::POST,
            &format!("/containers/{container}/exec"),
            "",
            Some(&config),
        )
        .await?;
    let exec_id = created.id;
    let mut start = json!({"Detach": o.detach, "Tty": o.tty});
    if let Some(c) = console {
        start["ConsoleSize"] = json!(c);
    }
    if o.detach {
        client
            .json::<Value>(
                Method::POST,
                &format!("/exec/{exec_id}/start"),
                "",
                Some(&start),
            )
            .await
            .or_else(|e| match e {
                ClientError::Json(_) => Ok(Value::Null),
                e => Err(e),
            })?;
        return Ok(0);
    }
    let hj = client
        .hijack(&format!("/exec/{exec_id}/start"), "", Some(&start))
        .await?;
    let (reader, mut writer) = hj.into_split();
    let raw = if o.tty && stdin && std::io::stdin().is_terminal() {
        Some(crate::term::RawMode::enable()?)
    } else {
        None
    };
    let input = if stdin {
        Some(tokio::spawn(pump_input(writer, o.tty)))
    } else {
        let _ = writer.shutdown().await;
        None
    };
    let output = tokio::spawn(pump_output(reader, o.tty));
    if o.tty {
        watch_resize(client.clone(), format!("/exec/{exec_id}/resize"));
    }
    let attached = Attached {
        output,
        input,
        _raw: raw,
    };
    if attached.finish().await {
        return Ok(0);
    }
    let info: Value = client
        .get_json(&format!("/exec/{exec_id}/json"), "")
        .await?;
    Ok(info["ExitCode"].as_i64().unwrap_or(0) as i32)
}

fn client_version_below(client: &Client, v: &str) -> bool {
    berth_api::client::version_less(client.api_version(), v)
}

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
    match &o.format {
        Some(f) => {
            let t = fmt::Template::parse(f)?;
            for b in &found {
                let v: Value = serde_json::from_slice(b)?;
                println!("{}", t.render(&v)?);
            }
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

// --- ps -----------------------------------------------------------------------------------------

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
    fmt::print_items(&format, &items, PS_HEADERS)?;
    Ok(0)
}

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
            .map(|a| a.iter().map(fmt::to_text).collect())
            .unwrap_or_default();
        text.push_str(&row.join("\t"));
        text.push('\n');
    }
    print!("{}", fmt::tabwrite(&text));
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
        fmt::print_items(&format, &rows, headers)?;
        if o.no_stream {
            return Ok(0);
        }
    }
}

fn split_cp_arg(s: &str) -> (Option<&str>, &str) {
    if s.starts_with('/') || s.starts_with('.') {
        return (None, s);
    }
    match s.split_once(':') {
        Some((c, p)) if !c.is_empty() && !c.contains('/') => (Some(c), p),
        _ => (None, s),
    }
}

pub async fn cp(host: &str, o: &CpOpts) -> Result<i32> {
    let client = connect(host).await?;
    match (split_cp_arg(&o.src), split_cp_arg(&o.dest)) {
        ((Some(c), path), (None, dest)) => {
            let resp = client
                .request(
                    Method::GET,
                    &format!("/containers/{c}/archive"),
                    &encode_query(&[("path", path)]),
                    &[],
                    empty_body(),
                )
                .await?;
            let mut body = BodyStream::new(resp);
            if dest == "-" {
                let mut out = std::io::stdout().lock();
                while let Some(chunk) = body.chunk().await? {
                    out.write_all(&chunk)?;
                }
                return Ok(0);
            }
            // extract with tar(1): entries are relative to the source's basename
            let dest_path = std::path::Path::new(dest);
            let (dir, rename) = if dest_path.is_dir() {
                (dest_path.to_path_buf(), None)
            } else {
                let parent = dest_path
                    .parent()
                    .filter(|p| !p.as_os_str().is_empty())
                    .unwrap_or(std::path::Path::new("."))
                    .to_path_buf();
                (parent, dest_path.file_name().map(|f| f.to_os_string()))
            };
            let tmp = tempdir_in(&dir)?;
            let mut child = std::process::Command::new("tar")
                .arg("-x")
                .arg("-C")
                .arg(&tmp)
                .stdin(std::process::Stdio::piped())
                .spawn()
                .context("run tar")?;
            {
                let mut stdin = child.stdin.take().ok_or_else(|| anyhow!("tar stdin"))?;
                while let Some(chunk) = body.chunk().await? {
                    stdin.write_all(&chunk)?;
                }
            }
            let st = child.wait()?;
            if !st.success() {
                let _ = std::fs::remove_dir_all(&tmp);
                bail!("extracting the archive failed");
            }
            let base = std::path::Path::new(path.trim_end_matches('/'))
                .file_name()
                .map(|f| f.to_os_string())
                .unwrap_or_else(|| ".".into());
            let target = dir.join(rename.unwrap_or_else(|| base.clone()));
            if target.is_dir() && tmp.join(&base).is_dir() {
                // merge: copy contents over
                let st = std::process::Command::new("cp")
                    .arg("-a")
                    .arg(format!("{}/.", tmp.join(&base).display()))
                    .arg(&target)
                    .status()?;
                if !st.success() {
                    bail!("copy failed");
                }
            } else {
                std::fs::rename(tmp.join(&base), &target)?;
            }
            let _ = std::fs::remove_dir_all(&tmp);
            Ok(0)
        }
        ((None, src), (Some(c), path)) => {
            // stat the destination: a directory receives the source under its own name
            let stat = client
                .send_raw(
                    Method::HEAD,
                    &format!(
                        "{}?{}",
                        client.versioned(&format!("/containers/{c}/archive")),
                        encode_query(&[("path", path)])
                    ),
                    &[],
                    empty_body(),
                )
                .await?;
            let (dir, name) = if stat.status().is_success() {
                let is_dir = stat
                    .headers()
                    .get("X-Docker-Container-Path-Stat")
                    .and_then(|h| h.to_str().ok())
                    .and_then(|h| {
                        use base64::Engine;
                        base64::engine::general_purpose::STANDARD.decode(h).ok()
                    })
                    .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
                    .and_then(|v| v["mode"].as_u64())
                    .is_some_and(|m| m & (1 << 31) != 0);
                if is_dir {
                    (path.to_string(), None)
                } else {
                    split_parent(path)
                }
            } else if stat.status().as_u16() == 404 {
                split_parent(path)
            } else {
                return Err(berth_api::client::error_from(stat).await.into());
            };
            let src_path = std::path::Path::new(src);
            let src_dir = src_path
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(std::path::Path::new("."));
            let src_base = src_path
                .file_name()
                .ok_or_else(|| anyhow!("invalid source path {src}"))?;
            let mut cmd = tokio::process::Command::new("tar");
            cmd.arg("-c").arg("-C").arg(src_dir);
            if let Some(n) = &name {
                cmd.arg(format!(
                    "--transform=s|^{}|{}|",
                    src_base.to_string_lossy(),
                    n
                ));
            }
            cmd.arg(src_base).stdout(std::process::Stdio::piped());
            let mut child = cmd.spawn().context("run tar")?;
            let stdout = child.stdout.take().ok_or_else(|| anyhow!("tar stdout"))?;
            client
                .request(
                    Method::PUT,
                    &format!("/containers/{c}/archive"),
                    &encode_query(&[("noOverwriteDirNonDir", "true"), ("path", &dir)]),
                    &[("Content-Type", "text/plain".to_string())],
                    berth_api::client::reader_body(stdout),
                )
                .await?;
            child.wait().await?;
            Ok(0)
        }
        _ => bail!("must specify at least one container source"),
    }
}

fn split_parent(path: &str) -> (String, Option<String>) {
    let p = std::path::Path::new(path);
    let parent = p
        .parent()
        .map(|d| d.to_string_lossy().to_string())
        .filter(|d| !d.is_empty())
        .unwrap_or_else(|| "/".into());
    (
        parent,
        p.file_name().map(|f| f.to_string_lossy().to_string()),
    )
}

fn tempdir_in(dir: &std::path::Path) -> Result<std::path::PathBuf> {
    for i in 0..100 {
        let p = dir.join(format!(".berth-cp-{}-{i}", std::process::id()));
        if std::fs::create_dir(&p).is_ok() {
            return Ok(p);
        }
    }
    bail!("cannot create a temporary directory in {}", dir.display())
}

pub async fn export(host: &str, o: &ExportOpts) -> Result<i32> {
    let client = connect(host).await?;
    if o.output.is_none() && std::io::stdout().is_terminal() {
        bail!("cowardly refusing to save to a terminal. Use the -o flag or redirect");
    }
    let resp = client
        .request(
            Method::GET,
            &format!("/containers/{}/export", o.container),
            "",
            &[],
            empty_body(),
        )
        .await?;
    crate::image::body_to_output(resp, o.output.as_deref()).await?;
    Ok(0)
}

pub async fn commit(host: &str, o: &CommitOpts) -> Result<i32> {
    let client = connect(host).await?;
    let mut q: Vec<(&str, String)> = vec![("author", o.author.clone().unwrap_or_default())];
    for c in &o.change {
        q.push(("changes", c.clone()));
    }
    q.push(("comment", o.message.clone().unwrap_or_default()));
    q.push(("container", o.container.clone()));
    if !o.pause {
        q.push(("pause", "0".into()));
    }
    if let Some(r) = &o.repository {
        let (repo, tag) = crate::image::split_ref(r);
        q.push(("repo", repo));
        q.push(("tag", tag.unwrap_or_default()));
    }
    #[derive(serde::Deserialize)]
    struct Id {
        #[serde(rename = "Id")]
        id: String,
    }
    let r: Id = client
        .json(Method::POST, "/commit", &encode_query(&q), None::<&()>)
        .await?;
    println!("{}", r.id);
    Ok(0)
}
