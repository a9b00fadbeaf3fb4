//! The daemon's core: containers, images, execs and events as objects, and their lifecycle.
//! The HTTP side (`crates/daemon`) parses requests and calls the [`Engine`]; the engine drives
//! the image store, the registry client, and one `berth-monitor` per running container, which
//! runs the runtime library.
//!
//! Where things live:
//! - `<data-root>/containers/<id>/`: the record (`config.json`, atomic, versioned: see
//!   `container::record`), the log (`<id>-json.log`), `hostname`, `hosts`, `resolv.conf`;
//! - `<data-root>/image/`: the image store; `<data-root>/volumes/<name>/_data`;
//! - `<exec-root>/c/<id>/` (short: the monitor socket path must fit in 108 bytes): the bundle (`config.json`, `rootfs` mount), the
//!   volume subpaths bound for it (`mounts/<n>`) and the
//!   monitor's state (`monitor.sock`, `exit.json`); `<exec-root>/netns/<id>`;
//!   `<exec-root>/runtime/`: the runtime's state; `<exec-root>/runtimes/<name>/`: a foreign
//!   runtime's (`runtimes`).

// dockerd's defaults (`wire`) are large `json!` literals.
#![recursion_limit = "256"]
pub mod attach;
pub mod build;
pub mod container;
pub mod distribution;
pub mod error;
pub mod events;
pub mod exec;
pub mod files;
mod health;
pub mod ids;
pub mod image_archive;
pub mod images;
pub mod lifecycle;
pub mod logs;
pub mod monitor;
pub mod monitor_prep;
pub mod mounts;
pub mod netns;
pub mod network;
mod orphans;
mod prune;
mod reconcile;
mod restart;
pub mod runtimes;
pub mod seccomp;
pub mod sharing;
pub mod spec;
mod update;
pub mod userns;
pub mod users;
pub mod views;
pub mod volumes;
pub mod wire;

mod create;
pub use create::NO_IMAGE;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use berth_image::import::ImageStore;
use tokio::sync::watch;

pub use error::{EngineError, Result};

/// The name of Berth's own OCI runtime, the default one (`HostConfig.Runtime`, `/info`).
pub const DEFAULT_RUNTIME: &str = "berth";

/// Where the engine keeps things, and which programs it runs.
#[derive(Debug, Clone)]
pub struct Config {
    pub data_root: PathBuf,
    pub exec_root: PathBuf,
    /// The `berth-monitor` binary.
    pub monitor: PathBuf,
    /// The `berth-init` binary, bind-mounted read-only at `/dev/init` and run as PID 1 of the
    /// containers created with `--init` (dockerd's `--init-path`).
    pub init: PathBuf,
    /// Whether containers whose `HostConfig.Init` is unset get the init (dockerd's `--init`).
    pub init_default: bool,
    /// Registries where plain HTTP is allowed (loopback always is).
    pub insecure_registries: Vec<String>,
    /// The registry configuration directory (`--registry-config-dir`): extra certificate
    /// authorities `<dir>/<host>/*.crt`, and containerd's `<dir>/<host>/hosts.toml` (a
    /// registry's mirrors and endpoints, see `berth_registry::hosts`).
    pub certs_dir: PathBuf,
    /// Docker Hub's mirrors (dockerd's `registry-mirrors`), tried in order before it; each
    /// checked and ending with `/`.
    pub registry_mirrors: Vec<String>,
    /// The build cache's size after a build's garbage collection (daemon.json `builder.gc`);
    /// none: no collection.
    pub builder_keep_storage: Option<u64>,
    /// The snapshotter (dockerd's `--storage-driver`); `Auto`: the one the data root has, else
    /// overlay where it works, else copies.
    pub storage_driver: berth_image::import::Backend,
    /// The foreign OCI runtimes by name (`--add-runtime`, daemon.json's `runtimes`, and `runc`
    /// when in PATH: [`runtimes::with_stock`]); Berth's own is [`DEFAULT_RUNTIME`].
    pub runtimes: std::collections::BTreeMap<String, berth_monitor::driver::Foreign>,
    /// The runtime of containers that name none (`--default-runtime`).
    pub default_runtime: String,
    /// The log driver and options of containers that name none (dockerd's `--log-driver`,
    /// `--log-opt`).
    pub default_log: logs::driver::DefaultLog,
    /// Where legacy plugins are looked for (their sockets and spec files); none: dockerd's
    /// `/run/docker/plugins`, `/etc/docker/plugins` and `/usr/lib/docker/plugins`.
    pub plugins_dir: Option<PathBuf>,
    /// The seccomp profile of containers without a `seccomp=` security option (dockerd's
    /// `--seccomp-profile`).
    pub seccomp_profile: seccomp::DaemonProfile,
    /// `--userns-remap`: the user namespace of containers not in the host's (`--userns=host`).
    pub userns_remap: Option<userns::Remap>,
}

/// The engine of one data root.
#[derive(Debug, Clone)]
pub struct Engine {
    /// Shared: every task that holds the engine holds a clone of it.
    pub config: Arc<Config>,
    pub images: images::Images,
    pub containers: container::store::Store,
    pub events: events::Events,
    /// Per container while it exists: its exits so far and, once removed, its last exit code,
    /// for `wait`. The entry goes with the container (waiters keep their receivers).
    exits: Arc<Mutex<HashMap<String, watch::Sender<ExitState>>>>,
    /// Per container: held by what changes its processes and mounts (start, the teardown after
    /// an exit, removal), so that a start never races the previous run's teardown.
    lifecycle: Arc<Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>>,
    /// Attaches made before the container started, connected by `start`.
    pending_attaches: Arc<Mutex<HashMap<String, Vec<attach::Pending>>>>,
    execs: exec::Execs,
    /// The last health state of the containers with a check (see `health`).
    health: Arc<Mutex<HashMap<String, berth_monitor::protocol::Health>>>,
    /// The legacy plugins activated so far (volume drivers).
    plugins: volumes::Registry,
    /// The networks, once berthd opened them ([`Engine::open_networks`]).
    net: network::NetSlot,
    /// What monitors are started with ([`Engine::prepare_monitors`]).
    monitor_prep: monitor_prep::Prepared,
}

impl Engine {
    /// Opens (creating) the data and exec roots, the image store and the container records.
    pub fn open(config: Config) -> Result<Engine> {
        volatile_exec_root(&config.exec_root)?;
        for dir in [
            config.data_root.clone(),
            config.exec_root.join("c"),
            config.exec_root.join("netns"),
            config.exec_root.join("runtime"),
            config.data_root.join("volumes"),
        ] {
            std::fs::create_dir_all(&dir)
                .map_err(|e| EngineError::internal(&format!("create {}", dir.display()), e))?;
        }
        let store = ImageStore::open_with(&config.data_root.join("image"), config.storage_driver)
            .map_err(|e| match e {
            // (dockerd's words, which say what it is about)
            berth_image::import::ImportError::Driver(e) => EngineError::internal("", e),
            e => EngineError::internal("open the image store", e),
        })?;
        sweep_leftovers(&store, &config.data_root.join("volumes"));
        let containers = container::store::Store::open(&config.data_root.join("containers"))?;
        // Which container uses which image is restated from the records (see `add_user`).
        let records = containers.all();
        let manifests: Vec<(berth_image::digest::Digest, &str)> = records
            .iter()
            .filter_map(|c| Some((c.image_manifest.parse().ok()?, c.id.as_str())))
            .collect();
        // Known in memory even if the disk is full (then the records are written next time).
        if let Err(e) = store
            .metadata
            .set_users(manifests.iter().map(|(d, id)| (d, *id)))
        {
            tracing::warn!(error = %e, "recording the images in use");
        }
        // Writable layers of containers that are gone (a crash in the middle of a removal).
        for info in store.snapshots.list().unwrap_or_default() {
            if let Some(id) = info.key.strip_prefix("container-") {
                if !containers.get(id).is_ok_and(|c| c.id == id) {
                    tracing::info!(snapshot = %info.key, "removing an orphaned container layer");
                    let _ = store.snapshots.remove(&info.key);
                }
            }
        }
        let images = images::Images::new(store);
        Ok(Engine {
            images,
            containers,
            events: events::Events::default(),
            exits: Arc::new(Mutex::new(HashMap::new())),
            lifecycle: Arc::new(Mutex::new(HashMap::new())),
            pending_attaches: Arc::new(Mutex::new(HashMap::new())),
            execs: Arc::new(Mutex::new(HashMap::new())),
            health: Arc::default(),
            net: Arc::default(),
            plugins: volumes::Registry::new(config.plugins_dir.as_deref()),
            monitor_prep: monitor_prep::Prepared::default(),
            config: Arc::new(config),
        })
    }

    /// Prepares once what every monitor is started with (a read-only view of its binary, the
    /// cgroup mounts: see [`monitor_prep`]), so that a container's start does not read or
    /// copy the host's whole mount table. berthd calls it once, before serving.
    pub fn prepare_monitors(&mut self) {
        self.monitor_prep = monitor_prep::prepare(&self.config.exec_root, &self.config.monitor);
    }

    /// `<exec-root>/c/<id>`: bundle and monitor state.
    pub fn run_dir(&self, id: &str) -> PathBuf {
        self.config.exec_root.join("c").join(id)
    }

    pub fn runtime_root(&self) -> PathBuf {
        self.config.exec_root.join("runtime")
    }

    pub fn netns_path(&self, id: &str) -> PathBuf {
        self.config.exec_root.join("netns").join(id)
    }

    pub fn data_dir(&self, id: &str) -> PathBuf {
        self.containers.dir_of(id)
    }

    fn exit_channel(&self, id: &str) -> watch::Sender<ExitState> {
        let mut map = self
            .exits
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        map.entry(id.to_string())
            .or_insert_with(|| watch::channel(ExitState::default()).0)
            .clone()
    }

    /// Waits for the lifecycle lock of container `id` (see [`Engine::lifecycle`]).
    async fn lifecycle_lock(&self, id: &str) -> tokio::sync::OwnedMutexGuard<()> {
        let lock = self
            .lifecycle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry(id.to_string())
            .or_default()
            .clone();
        lock.lock_owned().await
    }

    /// Tells the waiters of container `id` that it is gone, with its last exit code, and drops
    /// its channel (and whatever else the engine kept in memory for it).
    fn forget(&self, id: &str, exit_code: i64) {
        let sender = self
            .exits
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(id);
        if let Some(sender) = sender {
            sender.send_modify(|s| s.removed = Some(exit_code));
        }
        self.lifecycle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(id);
        self.pending_attaches
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(id);
        self.forget_execs(id);
        self.forget_health(id);
    }

    pub(crate) fn data_root(&self) -> &Path {
        &self.config.data_root
    }
}

/// Removes what killed operations left on disk (a `load`'s temporary directory, an unpack's
/// snapshots and the layers it committed for no image, a pull's lease and the blobs and layers
/// it fetched for no image, its unfinished downloads, a volume half removed or half made), so that none of
/// it stays or counts in `system df`. Failures are logged: a leftover is no reason not to start.
fn sweep_leftovers(store: &ImageStore, volumes: &Path) {
    match store.sweep_leftovers() {
        Ok(swept) if swept != berth_image::sweep::Swept::default() => {
            tracing::info!(
                ?swept,
                "removed what killed operations left in the image store"
            );
        }
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "sweeping the image store"),
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    if let Err(e) = berth_image::gc::collect_snapshots(store, now) {
        tracing::warn!(error = %e, "collecting unused layers");
    }
    if let Err(e) = berth_image::gc::collect(&store.content, &store.metadata, now) {
        tracing::warn!(error = %e, "collecting unused blobs");
    }
    // Downloads nobody writes any more (their pull was killed): a pull after a restart starts
    // its blobs over, as dockerd's does.
    match store.content.clean_ingest(std::time::Duration::ZERO) {
        Ok(0) => {}
        Ok(n) => tracing::info!(downloads = n, "removed abandoned downloads"),
        Err(e) => tracing::warn!(error = %e, "removing abandoned downloads"),
    }
    // A volume half removed (`.removed-*`) or half made (`.new-*`, renamed into place once
    // whole): neither is a volume.
    for entry in std::fs::read_dir(volumes).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with(".removed-") || name.starts_with(".new-") {
            tracing::info!(dir = %entry.path().display(), "removing what a killed volume operation left");
            if let Err(e) = std::fs::remove_dir_all(entry.path()) {
                tracing::warn!(error = %e, "removing {}", entry.path().display());
            }
        }
    }
}

/// What `wait` watches of a container: how many times it exited, and whether (with which last
/// exit code) it was removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct ExitState {
    pub exits: u64,
    pub removed: Option<i64>,
}

/// Makes sure the exec root dies with the machine, as its contents must (bundles, sockets,
/// `exit.json`, namespaces): when it is not on a tmpfs already (`/run` is one on most systems, not
/// on all), and still empty, a tmpfs is mounted on it. Besides the meaning, this keeps a
/// container's many short-lived state files off the disk.
fn volatile_exec_root(dir: &Path) -> Result<()> {
    const TMPFS_MAGIC: i64 = 0x0102_1994;
    std::fs::create_dir_all(dir)
        .map_err(|e| EngineError::internal(&format!("create {}", dir.display()), e))?;
    let on_tmpfs = rustix::fs::statfs(dir).is_ok_and(|s| s.f_type == TMPFS_MAGIC);
    let empty = std::fs::read_dir(dir).is_ok_and(|mut d| d.next().is_none());
    if on_tmpfs || !empty {
        return Ok(());
    }
    nix::mount::mount(
        Some("tmpfs"),
        dir,
        Some("tmpfs"),
        nix::mount::MsFlags::MS_NOSUID | nix::mount::MsFlags::MS_NODEV,
        Some("mode=0711"),
    )
    .map_err(|e| {
        EngineError::internal(
            &format!("mount a tmpfs on the exec root {}", dir.display()),
            e,
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Nothing the engine keeps in memory per container outlives the container: after 10,000
    /// containers came and went, the maps are as empty as at the start.
    #[tokio::test]
    async fn removed_containers_leave_nothing_in_memory() {
        let data = tempfile::tempdir().expect("data root");
        let exec = tempfile::tempdir_in("/dev/shm").expect("exec root on a tmpfs");
        let engine = Engine::open(Config {
            data_root: data.path().to_path_buf(),
            exec_root: exec.path().to_path_buf(),
            monitor: PathBuf::from("berth-monitor"),
            init: PathBuf::from("berth-init"),
            init_default: false,
            insecure_registries: Vec::new(),
            certs_dir: data.path().join("certs"),
            registry_mirrors: Vec::new(),
            builder_keep_storage: None,
            storage_driver: berth_image::import::Backend::Auto,
            runtimes: Default::default(),
            default_runtime: DEFAULT_RUNTIME.into(),
            default_log: Default::default(),
            plugins_dir: None,
            seccomp_profile: Default::default(),
            userns_remap: None,
        })
        .expect("engine");
        for n in 0..10_000 {
            let id = format!("{n:064x}");
            let mut rx = engine.exit_channel(&id).subscribe();
            drop(engine.lifecycle_lock(&id).await);
            engine.exit_channel(&id).send_modify(|s| s.exits += 1);
            engine.execs.lock().expect("execs").insert(
                format!("exec-{n}"),
                exec::Exec {
                    id: format!("exec-{n}"),
                    container: id.clone(),
                    config: Default::default(),
                    started: true,
                    failed: None,
                },
            );
            engine.health.lock().expect("health").insert(
                id.clone(),
                berth_monitor::protocol::Health {
                    version: 1,
                    status: berth_monitor::protocol::HealthStatus::Starting,
                    failing_streak: 0,
                    log: Vec::new(),
                },
            );
            engine.forget(&id, 137);
            // A waiter still holding its receiver learns the removal and the last code.
            let state = *rx.borrow_and_update();
            assert_eq!(state.removed, Some(137));
        }
        let lock = |m: &Mutex<HashMap<String, watch::Sender<ExitState>>>| {
            m.lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .len()
        };
        assert_eq!(lock(&engine.exits), 0);
        assert_eq!(
            engine
                .lifecycle
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .len(),
            0
        );
        assert_eq!(engine.execs.lock().expect("execs").len(), 0);
        assert_eq!(engine.health.lock().expect("health").len(), 0);
    }
}
