//! `berthd`: the Docker Engine API on Unix sockets, TCP (with mutual TLS) and systemd's sockets.

// The `/info` body is one large `json!`.
#![recursion_limit = "256"]

mod blocking_io;
mod build;
mod containers;
mod exec;
mod files;
mod hijack;
mod http;
mod image_archive;
mod images;
mod listen;
mod networks;
mod server;
mod system;
mod tls;
mod volumes;

// The request line and body rules live in the library, where the fuzz targets reach them.
use berth_daemon::route;

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context};
use clap::Parser;

#[derive(Parser, Debug)]
#[command(
    name = "berthd",
    version,
    about = "The Berth daemon: the Docker Engine API over containers and images"
)]
struct Flags {
    /// Where to listen: unix://PATH, tcp://HOST:PORT, fd:// or fd://N (systemd's sockets);
    /// repeatable (default unix:///run/berth/berth.sock).
    #[arg(short = 'H', long = "host")]
    hosts: Vec<String>,
    /// Group of the unix sockets (root:GROUP, 0660); "" leaves them root's.
    #[arg(short = 'G', long = "group")]
    group: Option<String>,
    /// Use TLS on tcp:// (implied by --tlsverify); --tls=false allows plain TCP.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    tls: Option<bool>,
    /// Use TLS and require client certificates signed by --tlscacert.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    tlsverify: Option<bool>,
    /// Trust certs signed only by this CA (default $DOCKER_CERT_PATH/ca.pem, ~/.docker/ca.pem).
    #[arg(long)]
    tlscacert: Option<PathBuf>,
    /// Path to the TLS certificate file (default cert.pem beside the CA's).
    #[arg(long)]
    tlscert: Option<PathBuf>,
    /// Path to the TLS key file (default key.pem beside the CA's).
    #[arg(long)]
    tlskey: Option<PathBuf>,
    /// Where persistent state lives.
    #[arg(long, default_value = "/var/lib/berth")]
    data_root: PathBuf,
    /// Where runtime state lives (tmpfs).
    #[arg(long, default_value = "/run/berth")]
    exec_root: PathBuf,
    /// Daemon configuration (docker's daemon.json key names).
    #[arg(long, default_value = "/etc/berth/daemon.json")]
    config_file: PathBuf,
    /// debug, info, warn, error.
    #[arg(short = 'l', long, default_value = "info")]
    log_level: String,
    /// The berth-monitor binary (default: beside berthd).
    #[arg(long)]
    monitor: Option<PathBuf>,
    /// The init of `--init` containers (default: `berth-init` beside berthd, else in PATH).
    #[arg(long)]
    init_path: Option<PathBuf>,
    /// Run an init in every container whose create body leaves `HostConfig.Init` unset.
    #[arg(long)]
    init: bool,
    /// A registry where plain HTTP is allowed (loopback always is); repeatable.
    #[arg(long = "insecure-registry")]
    insecure_registries: Vec<String>,
    /// Docker Hub's mirror (`https://HOST[:PORT]`), tried before it; repeatable
    /// (daemon.json `registry-mirrors`).
    #[arg(long = "registry-mirror", value_name = "URL")]
    registry_mirrors: Vec<String>,
    /// The registries' configuration: CAs `DIR/HOST/*.crt` and containerd's
    /// `DIR/HOST[:PORT]/hosts.toml` (mirrors and endpoints per registry, `DIR/_default` for the
    /// others).
    #[arg(long, value_name = "DIR", default_value = "/etc/berth/certs.d")]
    registry_config_dir: PathBuf,
    /// The default bridge network's interface.
    #[arg(short = 'b', long, default_value = "berth0")]
    bridge: String,
    /// The default bridge's address and prefix (e.g. 10.99.0.1/24); chosen when absent.
    #[arg(long)]
    bip: Option<String>,
    /// IPv6 on the default bridge network too.
    #[arg(long)]
    ipv6: bool,
    /// The default bridge's IPv6 subnet (with `--ipv6`; chosen from the host's unique local
    /// pool when absent).
    #[arg(long)]
    fixed_cidr_v6: Option<String>,
    /// Berth's nftables table (`ip` family); another one lets several daemons share a host.
    #[arg(long, default_value = "berth")]
    nft_table: String,
    /// The build cache's garbage collection: after each build, the least recently used
    /// entries go beyond this size (daemon.json `builder.gc.defaultKeepStorage`, with
    /// `builder.gc.enabled`), e.g. `20GB`.
    #[arg(long)]
    builder_keep_storage: Option<String>,
    /// The storage driver: overlay2, btrfs (the data root on btrfs) or vfs (copies); default:
    /// the one the data root was made with, else overlay2 where overlayfs works, else vfs.
    #[arg(short = 's', long)]
    storage_driver: Option<String>,
    /// A foreign OCI runtime with runc's command line, as NAME=PATH; repeatable (`runc` is
    /// there whenever a `runc` binary is in PATH).
    #[arg(long = "add-runtime", value_name = "NAME=PATH")]
    add_runtimes: Vec<String>,
    /// The runtime of containers that name none (default: Berth's own, `berth`).
    #[arg(long)]
    default_runtime: Option<String>,
    /// daemon.json's `runtimes` (read with the file).
    #[arg(skip)]
    config_runtimes: std::collections::BTreeMap<String, berth_engine::runtimes::Foreign>,
    /// The log driver of containers that name none (json-file, local, none...).
    #[arg(long)]
    log_driver: Option<String>,
    /// An option of the default log driver, KEY=VALUE; repeatable.
    #[arg(long = "log-opt")]
    log_opts: Vec<String>,
    /// Where legacy plugins' sockets and spec files are looked for, instead of dockerd's
    /// `/run/docker/plugins`, `/etc/docker/plugins` and `/usr/lib/docker/plugins` (tests).
    #[arg(long, hide = true)]
    plugins_dir: Option<PathBuf>,
    /// The seccomp profile of containers without `--security-opt seccomp=...`: `builtin`
    /// (Docker's default profile), `unconfined` (no filter) or a profile file in Docker's
    /// format, read when berthd starts.
    #[arg(long, value_name = "builtin|unconfined|FILE")]
    seccomp_profile: Option<String>,
    /// User-namespace remapping of the containers' root: `default` (the user `dockremap`,
    /// made with a range in /etc/subuid and /etc/subgid when missing), `USER[:GROUP]` or
    /// `UID[:GID]` with ranges there; a container opts out with `--userns=host`.
    #[arg(long, value_name = "default|USER[:GROUP]|UID[:GID]")]
    userns_remap: Option<String>,
    /// The Kubernetes CRI v1 socket (`unix://PATH`); default `<exec-root>/cri.sock`
    /// (`unix:///run/berth/cri.sock`).
    #[arg(long, value_name = "unix://PATH")]
    cri_socket: Option<String>,
    /// Serve the Kubernetes CRI v1 (`--cri=false`: no CRI socket).
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    cri: Option<bool>,
    /// Where the CRI finds pod network configurations: the first of them (file names sorted)
    /// is the pods' network.
    #[arg(long, value_name = "DIR")]
    cni_conf_dir: Option<PathBuf>,
    /// Where CNI plugins are (repeatable; default `CNI_PATH`, else `/usr/lib/cni` and
    /// `/opt/cni/bin`).
    #[arg(long, value_name = "DIR")]
    cni_bin_dir: Vec<PathBuf>,
    /// Where the CRI's streaming server (the URLs of Exec, Attach and PortForward) listens;
    /// default a free port on 127.0.0.1.
    #[arg(long, value_name = "ADDRESS:PORT")]
    cri_stream_address: Option<String>,
}

fn main() -> anyhow::Result<()> {
    // A panic ends berthd in every build, as `panic = "abort"` does in release: a debug build
    // (the tests') must not survive what would kill the released daemon.
    let report = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        report(info);
        std::process::abort();
    }));
    // Descriptors inherited from whoever started berthd (a shell's, a CI runner's pipe) must
    // not reach the monitors, which outlive berthd and would hold them open for as long as
    // their containers run.
    berth_runtime::sys::cloexec_from(3).context("marking inherited descriptors close-on-exec")?;
    let mut flags = Flags::parse();
    apply_config_file(&mut flags)?;
    // Before anything is bound or made: a bad mirror refuses the start.
    let registry_mirrors = registry_mirrors(&flags.registry_mirrors)?;
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_new(&flags.log_level)
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let (listeners, tls) = listeners(&flags)?;
    let socket_files = listeners.socket_files.clone();
    let remove_sockets = move || {
        for f in &socket_files {
            let _ = std::fs::remove_file(f);
        }
    };
    let monitor = match flags.monitor.clone() {
        Some(m) => m,
        None => std::env::current_exe()
            .context("finding berthd's own path")?
            .with_file_name("berth-monitor"),
    };
    let init = init_binary(flags.init_path.as_deref())?;
    let (runtimes, default_runtime) = runtimes(&flags)?;
    let storage_driver = match flags.storage_driver.as_deref() {
        Some(name) => berth_image::import::Backend::from_driver_name(name)?,
        None => berth_image::import::Backend::Auto,
    };
    // Before any thread: the remap's user namespace is made by a cloned helper.
    let userns_remap =
        berth_engine::userns::Remap::setup(flags.userns_remap.as_deref().unwrap_or_default())
            .context("--userns-remap")?;
    let engine = berth_engine::Engine::open(berth_engine::Config {
        data_root: flags.data_root.clone(),
        exec_root: flags.exec_root.clone(),
        monitor,
        init,
        init_default: flags.init,
        insecure_registries: flags.insecure_registries.clone(),
        certs_dir: flags.registry_config_dir.clone(),
        registry_mirrors,
        builder_keep_storage: match flags.builder_keep_storage.as_deref() {
            Some(s) => Some(
                berth_engine::lifecycle::parse_size(s)
                    .with_context(|| format!("invalid builder keep-storage {s:?}"))?,
            ),
            None => None,
        },
        storage_driver,
        runtimes,
        default_runtime,
        default_log: default_log(&flags)?,
        plugins_dir: flags.plugins_dir.clone(),
        seccomp_profile: berth_engine::seccomp::DaemonProfile::from_flag(
            flags.seccomp_profile.as_deref().unwrap_or_default(),
        )
        .context("--seccomp-profile")?,
        userns_remap,
    })?;
    let mut engine = engine;
    engine.prepare_monitors();
    raise_open_files_limit();
    // Two malloc arenas at most: berthd's short-lived threads (namespaces, removals, blocking
    // tasks) would each get an arena of their own, kept for the process's life.
    #[cfg(target_env = "gnu")]
    // SAFETY: mallopt only sets an allocator parameter; no other thread runs yet.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
    let network = berth_engine::network::NetworkConfig {
        bridge: flags.bridge.clone(),
        bip: match flags.bip.as_deref() {
            Some(b) => Some(
                b.parse()
                    .with_context(|| format!("invalid --bip {b}: expected ADDRESS/PREFIX"))?,
            ),
            None => None,
        },
        ipv6: flags.ipv6,
        fixed_cidr_v6: match flags.fixed_cidr_v6.as_deref() {
            Some(c) => Some(c.parse().with_context(|| {
                format!("invalid --fixed-cidr-v6 {c}: expected an IPv6 ADDRESS/PREFIX")
            })?),
            None => None,
        },
        table: flags.nft_table.clone(),
        cni_path: (!flags.cni_bin_dir.is_empty()).then(|| flags.cni_bin_dir.clone()),
    };
    if network.fixed_cidr_v6.is_some() && !network.ipv6 {
        bail!("--fixed-cidr-v6 needs --ipv6");
    }
    let cri_socket = match (flags.cri, flags.cri_socket.as_deref()) {
        (Some(false), _) => None,
        (_, Some(s)) => Some(berth_cri::socket_path(s).context("--cri-socket")?),
        (_, None) => Some(flags.exec_root.join("cri.sock")),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        engine
            .open_networks(network)
            .await
            .context("setting up networking")?;
        engine.reconcile().await;
        if let Some(path) = &cri_socket {
            let listener = berth_cri::Listener::bind(path).context("the CRI socket")?;
            let engine = engine.clone();
            let mut options = berth_cri::Options::default();
            if let Some(dir) = &flags.cni_conf_dir {
                options.cni_conf_dir = dir.clone();
            }
            if let Some(a) = &flags.cri_stream_address {
                options.stream_address = a.parse().with_context(|| {
                    format!("invalid --cri-stream-address {a}: expected ADDRESS:PORT")
                })?;
            }
            tokio::spawn(async move {
                if let Err(e) = berth_cri::serve(engine, options, listener).await {
                    tracing::error!("CRI server: {e}");
                }
            });
        }
        let state = Arc::new(server::State::new(engine));
        tokio::spawn(server::idle_trim(Arc::clone(&state)));
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            r = listen::serve(listeners, tls, state) => Ok(r?),
            _ = term.recv() => {
                tracing::info!("SIGTERM: shutting down; containers keep running");
                remove_sockets();
                Ok(())
            }
            _ = tokio::signal::ctrl_c() => {
                remove_sockets();
                Ok(())
            }
        }
    })
}

/// The API's listeners, bound, and their TLS, refused as dockerd refuses them: plain TCP needs
/// an explicit `--tls=false` (and is warned about, as TLS without `--tlsverify` is).
fn listeners(
    flags: &Flags,
) -> anyhow::Result<(listen::Listeners, Option<Arc<rustls::ServerConfig>>)> {
    // `--tlsverify`, given at all (even =false), turns TLS on, as in dockerd.
    let use_tls = flags.tlsverify.is_some() || flags.tls == Some(true);
    let verify = flags.tlsverify == Some(true);
    let mut hosts = Vec::new();
    let given = if flags.hosts.is_empty() {
        vec![listen::DEFAULT_HOST.to_string()]
    } else {
        flags.hosts.clone()
    };
    for h in &given {
        let host = listen::Host::parse(h, use_tls)?;
        if let listen::Host::Tcp(addr) = &host {
            if !use_tls && flags.tls != Some(false) {
                bail!(
                    "refusing to listen on tcp://{addr} without TLS: access to the API is \
                     equivalent to root access on this machine; use --tlsverify with \
                     certificates, or --tls=false to run without TLS anyway"
                );
            }
            if !verify {
                tracing::warn!(host = %h, "Binding to IP address without --tlsverify is insecure and gives root access on this machine to everyone who has access to your network.");
                tracing::warn!(host = %h, "Binding to an IP address, even on localhost, can also give access to scripts run in a browser. Be safe out there!");
            }
        }
        hosts.push(host);
    }
    let tls = if use_tls {
        let dir = std::env::var_os("DOCKER_CERT_PATH")
            .filter(|d| !d.is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/root".into()))
                    .join(".docker")
            });
        let files = tls::TlsFiles {
            ca: flags
                .tlscacert
                .clone()
                .unwrap_or_else(|| dir.join("ca.pem")),
            cert: flags
                .tlscert
                .clone()
                .unwrap_or_else(|| dir.join("cert.pem")),
            key: flags.tlskey.clone().unwrap_or_else(|| dir.join("key.pem")),
            verify,
        };
        Some(tls::server_config(&files)?)
    } else {
        None
    };
    let group = flags.group.as_deref().unwrap_or(listen::DEFAULT_GROUP);
    let listeners = listen::bind(&hosts, group, flags.group.is_some())?;
    Ok((listeners, tls))
}

/// The foreign runtimes (`--add-runtime`, daemon.json's `runtimes`, `runc` from PATH) and the
/// default one's name, refused as dockerd refuses them: a name given twice or reserved, a
/// default that is none of them.
fn runtimes(
    flags: &Flags,
) -> anyhow::Result<(
    std::collections::BTreeMap<String, berth_engine::runtimes::Foreign>,
    String,
)> {
    let mut configured = flags.config_runtimes.clone();
    for arg in &flags.add_runtimes {
        let Some((name, path)) = arg
            .split_once('=')
            .filter(|(n, p)| !n.is_empty() && !p.is_empty())
        else {
            bail!("invalid runtime argument: {arg}");
        };
        if configured.contains_key(name) {
            bail!("runtime '{name}' was already defined");
        }
        let foreign = berth_engine::runtimes::Foreign {
            path: PathBuf::from(path),
            args: Vec::new(),
        };
        configured.insert(name.to_string(), foreign);
    }
    let all = berth_engine::runtimes::with_stock(configured, std::env::var_os("PATH").as_deref())
        .map_err(anyhow::Error::msg)?;
    let default = flags
        .default_runtime
        .clone()
        .unwrap_or_else(|| berth_engine::DEFAULT_RUNTIME.to_string());
    if default != berth_engine::DEFAULT_RUNTIME && !all.contains_key(&default) {
        bail!("specified default runtime '{default}' does not exist");
    }
    Ok((all, default))
}

/// The init binary as dockerd finds its `docker-init`: `--init-path` (a bare name is looked up
/// in PATH), else `berth-init` beside berthd, else in PATH. A binary found nowhere is kept as
/// given: containers without `--init` do not need it, and the others fail to start saying so.
fn init_binary(configured: Option<&std::path::Path>) -> anyhow::Result<PathBuf> {
    const NAME: &str = "berth-init";
    let in_path = |name: &std::path::Path| {
        std::env::var_os("PATH").and_then(|path| {
            std::env::split_paths(&path)
                .map(|dir| dir.join(name))
                .find(|p| p.is_file())
        })
    };
    if let Some(p) = configured {
        if p.components().count() > 1 || p.is_absolute() {
            return Ok(p.to_path_buf());
        }
        return Ok(in_path(p).unwrap_or_else(|| p.to_path_buf()));
    }
    let beside = std::env::current_exe()
        .context("finding berthd's own path")?
        .with_file_name(NAME);
    if beside.is_file() {
        return Ok(beside);
    }
    Ok(in_path(std::path::Path::new(NAME)).unwrap_or(beside))
}

/// The default log driver and options (`--log-driver`, `--log-opt`), checked as dockerd checks
/// them when it starts.
fn default_log(flags: &Flags) -> anyhow::Result<berth_engine::logs::driver::DefaultLog> {
    let mut log = berth_engine::logs::driver::DefaultLog::default();
    if let Some(d) = &flags.log_driver {
        log.driver = d.clone();
    }
    for opt in &flags.log_opts {
        let Some((k, v)) = opt.split_once('=') else {
            bail!("invalid --log-opt {opt:?}: expected KEY=VALUE");
        };
        log.opts.insert(k.to_string(), v.to_string());
    }
    berth_engine::logs::driver::check(&log.driver, &log.opts)
        .with_context(|| format!("the default log driver {}", log.driver))?;
    Ok(log)
}

/// `--registry-mirror` and daemon.json's `registry-mirrors`, checked as dockerd checks them
/// (a bad one refuses the start with dockerd's words), each ending with `/`; no duplicates.
fn registry_mirrors(given: &[String]) -> anyhow::Result<Vec<String>> {
    let mut mirrors: Vec<String> = Vec::new();
    for m in given {
        let m = berth_engine::distribution::validate_mirror(m)?;
        if !mirrors.contains(&m) {
            mirrors.push(m);
        }
    }
    Ok(mirrors)
}

/// Reads `--config-file` if it exists: `hosts`, `group`, `tls`, `tlsverify`, `tlscacert`,
/// `tlscert`, `tlskey`, `data-root`, `exec-root`, `log-level`,
/// `insecure-registries`, `registry-mirrors`, `registry-config-dir` (Berth's own), `init`, `init-path`, `bridge`, `bip`, `ipv6`, `fixed-cidr-v6`,
/// `nft-table` (Berth's own), `builder.gc` (`enabled`, `defaultKeepStorage`), `storage-driver`,
/// `runtimes` (`{"NAME": {"path": ..., "runtimeArgs": [...]}}`), `default-runtime`, `seccomp-profile`,
/// `userns-remap`, `cri-socket`, `cri` (Berth's own),
/// `log-driver`, `log-opts` (options given as `--log-opt` win),
/// as docker's daemon.json names them (flags given on the command line are overridden only when
/// left at their defaults).
fn apply_config_file(flags: &mut Flags) -> anyhow::Result<()> {
    let text = match std::fs::read_to_string(&flags.config_file) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e).context(format!("reading {}", flags.config_file.display())),
    };
    let v: serde_json::Value = serde_json::from_str(&text)
        .with_context(|| format!("{} is not valid JSON", flags.config_file.display()))?;
    let defaults = Flags::parse_from(["berthd"]);
    if flags.hosts.is_empty() {
        let hosts = v["hosts"].as_array().into_iter().flatten();
        flags.hosts = hosts
            .filter_map(|h| h.as_str().map(str::to_string))
            .collect();
    }
    if flags.group.is_none() {
        flags.group = v["group"].as_str().map(str::to_string);
    }
    for (key, flag) in [("tls", &mut flags.tls), ("tlsverify", &mut flags.tlsverify)] {
        if flag.is_none() {
            *flag = v[key].as_bool();
        }
    }
    for (key, flag) in [
        ("tlscacert", &mut flags.tlscacert),
        ("tlscert", &mut flags.tlscert),
        ("tlskey", &mut flags.tlskey),
    ] {
        if flag.is_none() {
            *flag = v[key].as_str().map(PathBuf::from);
        }
    }
    if let Some(d) = v["data-root"]
        .as_str()
        .filter(|_| flags.data_root == defaults.data_root)
    {
        flags.data_root = PathBuf::from(d);
    }
    if let Some(d) = v["exec-root"]
        .as_str()
        .filter(|_| flags.exec_root == defaults.exec_root)
    {
        flags.exec_root = PathBuf::from(d);
    }
    if let Some(d) = v["registry-config-dir"]
        .as_str()
        .filter(|_| flags.registry_config_dir == defaults.registry_config_dir)
    {
        flags.registry_config_dir = PathBuf::from(d);
    }
    match &v["registry-mirrors"] {
        serde_json::Value::Null => {}
        serde_json::Value::Array(list) => {
            for m in list {
                let Some(m) = m.as_str() else {
                    bail!(
                        "{}: registry-mirrors must be a list of strings",
                        flags.config_file.display()
                    );
                };
                flags.registry_mirrors.push(m.to_string());
            }
        }
        _ => bail!(
            "{}: registry-mirrors must be a list of strings",
            flags.config_file.display()
        ),
    }
    for r in v["insecure-registries"].as_array().into_iter().flatten() {
        if let Some(r) = r.as_str() {
            flags.insecure_registries.push(r.to_string());
        }
    }
    if let Some(p) = v["init-path"]
        .as_str()
        .filter(|_| flags.init_path.is_none())
    {
        flags.init_path = Some(PathBuf::from(p));
    }
    if let Some(b) = v["bridge"]
        .as_str()
        .filter(|_| flags.bridge == defaults.bridge)
    {
        flags.bridge = b.to_string();
    }
    if let Some(b) = v["bip"].as_str().filter(|_| flags.bip.is_none()) {
        flags.bip = Some(b.to_string());
    }
    if let Some(true) = v["ipv6"].as_bool() {
        flags.ipv6 = true;
    }
    if let Some(c) = v["fixed-cidr-v6"]
        .as_str()
        .filter(|_| flags.fixed_cidr_v6.is_none())
    {
        flags.fixed_cidr_v6 = Some(c.to_string());
    }
    if let Some(t) = v["nft-table"]
        .as_str()
        .filter(|_| flags.nft_table == defaults.nft_table)
    {
        flags.nft_table = t.to_string();
    }
    if let Some(d) = v["storage-driver"]
        .as_str()
        .filter(|_| flags.storage_driver.is_none())
    {
        flags.storage_driver = Some(d.to_string());
    }
    if let Some(r) = v["default-runtime"]
        .as_str()
        .filter(|_| flags.default_runtime.is_none())
    {
        flags.default_runtime = Some(r.to_string());
    }
    if flags.cri_socket.is_none() {
        flags.cri_socket = v["cri-socket"].as_str().map(str::to_string);
    }
    if flags.cri.is_none() {
        flags.cri = v["cri"].as_bool();
    }
    if flags.cni_conf_dir.is_none() {
        flags.cni_conf_dir = v["cni-conf-dir"].as_str().map(PathBuf::from);
    }
    if flags.cri_stream_address.is_none() {
        flags.cri_stream_address = v["cri-stream-address"].as_str().map(str::to_string);
    }
    if flags.cni_bin_dir.is_empty() {
        if let Some(dirs) = v["cni-bin-dir"].as_array() {
            flags.cni_bin_dir = dirs
                .iter()
                .filter_map(|d| d.as_str())
                .map(PathBuf::from)
                .collect();
        } else if let Some(dir) = v["cni-bin-dir"].as_str() {
            flags.cni_bin_dir = vec![PathBuf::from(dir)];
        }
    }
    if let Some(p) = v["seccomp-profile"]
        .as_str()
        .filter(|_| flags.seccomp_profile.is_none())
    {
        flags.seccomp_profile = Some(p.to_string());
    }
    if let Some(r) = v["userns-remap"]
        .as_str()
        .filter(|_| flags.userns_remap.is_none())
    {
        flags.userns_remap = Some(r.to_string());
    }
    if let Some(runtimes) = v.get("runtimes").filter(|r| !r.is_null()) {
        let Some(runtimes) = runtimes.as_object() else {
            bail!(
                "{}: runtimes must be an object",
                flags.config_file.display()
            );
        };
        for (name, r) in runtimes {
            let path = r["path"].as_str().filter(|p| !p.is_empty());
            let Some(path) = path else {
                bail!(
                    "{}: runtime {name} has no path",
                    flags.config_file.display()
                );
            };
            let args = match &r["runtimeArgs"] {
                serde_json::Value::Null => Vec::new(),
                serde_json::Value::Array(a) if a.iter().all(|x| x.is_string()) => a
                    .iter()
                    .filter_map(|x| x.as_str().map(str::to_string))
                    .collect(),
                _ => bail!(
                    "{}: runtimeArgs of {name} must be a list of strings",
                    flags.config_file.display()
                ),
            };
            let foreign = berth_engine::runtimes::Foreign {
                path: PathBuf::from(path),
                args,
            };
            flags.config_runtimes.insert(name.clone(), foreign);
        }
    }
    if let Some(d) = v["log-driver"]
        .as_str()
        .filter(|_| flags.log_driver.is_none())
    {
        flags.log_driver = Some(d.to_string());
    }
    if let Some(opts) = v["log-opts"].as_object() {
        for (k, value) in opts {
            // Strings, as dockerd requires them.
            let Some(value) = value.as_str() else {
                bail!("log-opts {k:?}: the value must be a string");
            };
            if !flags
                .log_opts
                .iter()
                .any(|o| o.split_once('=').is_some_and(|(key, _)| key == k))
            {
                flags.log_opts.push(format!("{k}={value}"));
            }
        }
    }
    if let Some(true) = v["init"].as_bool() {
        flags.init = true;
    }
    let gc = &v["builder"]["gc"];
    if gc["enabled"].as_bool() == Some(true) && flags.builder_keep_storage.is_none() {
        flags.builder_keep_storage = gc["defaultKeepStorage"].as_str().map(str::to_string);
    }
    if let Some(l) = v["log-level"]
        .as_str()
        .filter(|_| flags.log_level == defaults.log_level)
    {
        flags.log_level = l.to_string();
    }
    Ok(())
}

/// berthd holds a descriptor per running container (its exit wait), beside its listeners and
/// clients: the soft limit of open files (1024 where systemd starts services) would stop a
/// dense host near a thousand. It is raised to the hard limit, as Go's runtime raises dockerd's
/// (containers, started by monitors that inherit it, see the same limit as under dockerd).
fn raise_open_files_limit() {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let limit = getrlimit(Resource::Nofile);
    if limit.current < limit.maximum {
        let raised = Rlimit {
            current: limit.maximum,
            maximum: limit.maximum,
        };
        if let Err(e) = setrlimit(Resource::Nofile, raised) {
            tracing::warn!(error = %e, "raising the open files limit");
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// The flags of `berthd ARGS` with `json` as its daemon.json (a file of its own: the
    /// tests run at the same time).
    fn with_file(args: &[&str], json: &str) -> Flags {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("daemon.json");
        std::fs::write(&file, json).unwrap();
        let mut all = vec!["berthd", "--config-file", file.to_str().unwrap()];
        all.extend_from_slice(args);
        let mut flags = Flags::parse_from(all);
        apply_config_file(&mut flags).unwrap();
        flags
    }

    #[test]
    fn cri_keys_of_daemon_json() {
        let json = r#"{"cri-socket": "unix:///run/k.sock", "cri": false}"#;
        let f = with_file(&[], json);
        assert_eq!(f.cri_socket.as_deref(), Some("unix:///run/k.sock"));
        assert_eq!(f.cri, Some(false));
        // Flags win.
        let f = with_file(&["--cri-socket", "unix:///x.sock", "--cri"], json);
        assert_eq!(f.cri_socket.as_deref(), Some("unix:///x.sock"));
        assert_eq!(f.cri, Some(true));
        assert!(berth_cri::socket_path("relative.sock").is_err());
        assert_eq!(
            berth_cri::socket_path("unix:///run/k.sock").unwrap(),
            PathBuf::from("/run/k.sock")
        );
    }

    #[test]
    fn registry_keys_of_daemon_json() {
        let json = r#"{"registry-mirrors": ["https://m1.lan", "http://m2.lan:5000/"],
            "registry-config-dir": "/etc/k/certs.d"}"#;
        let f = with_file(&["--registry-mirror", "https://m0.lan"], json);
        assert_eq!(f.registry_config_dir, PathBuf::from("/etc/k/certs.d"));
        assert_eq!(
            registry_mirrors(&f.registry_mirrors).unwrap(),
            ["https://m0.lan/", "https://m1.lan/", "http://m2.lan:5000/"]
        );
        let f = with_file(&["--registry-config-dir", "/x"], json);
        assert_eq!(f.registry_config_dir, PathBuf::from("/x"));
        assert_eq!(
            with_file(&[], "{}").registry_config_dir,
            PathBuf::from("/etc/berth/certs.d")
        );
        assert!(registry_mirrors(&["ftp://m.lan".to_string()]).is_err());
    }

    #[test]
    fn remote_keys_of_daemon_json() {
        let json = r#"{"hosts": ["unix:///run/a.sock", "tcp://0.0.0.0:2376"], "group": "adm",
            "tls": true, "tlsverify": true, "tlscacert": "/c/ca.pem", "tlscert": "/c/cert.pem",
            "tlskey": "/c/key.pem"}"#;
        let f = with_file(&[], json);
        assert_eq!(f.hosts, ["unix:///run/a.sock", "tcp://0.0.0.0:2376"]);
        assert_eq!(f.group.as_deref(), Some("adm"));
        assert_eq!((f.tls, f.tlsverify), (Some(true), Some(true)));
        assert_eq!(f.tlscacert.unwrap(), PathBuf::from("/c/ca.pem"));
        assert_eq!(f.tlscert.unwrap(), PathBuf::from("/c/cert.pem"));
        assert_eq!(f.tlskey.unwrap(), PathBuf::from("/c/key.pem"));
        // Flags win.
        let f = with_file(&["-H", "unix:///x.sock", "--tls=false", "-G", ""], json);
        assert_eq!(f.hosts, ["unix:///x.sock"]);
        assert_eq!(f.tls, Some(false));
        assert_eq!(f.group.as_deref(), Some(""));
    }
}
