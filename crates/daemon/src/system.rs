//! `/_ping`, `/version`, `/info`, `/events`.

use berth_api::models::EventMessage;
use berth_engine::Engine;
use bytes::Bytes;
use http::{HeaderValue, Method, StatusCode};
use serde_json::json;

use crate::http::{channel, full, json, response, Resp};
use crate::route;

pub fn ping(method: &Method) -> Resp {
    let body = if method == Method::HEAD { "" } else { "OK" };
    let mut resp = response(
        StatusCode::OK,
        Some("text/plain; charset=utf-8"),
        full(body),
    );
    let h = resp.headers_mut();
    h.insert(
        "Cache-Control",
        HeaderValue::from_static("no-cache, no-store, must-revalidate"),
    );
    h.insert("Pragma", HeaderValue::from_static("no-cache"));
    h.insert("Builder-Version", HeaderValue::from_static("1"));
    resp
}

fn kernel() -> String {
    rustix::system::uname()
        .release()
        .to_string_lossy()
        .into_owned()
}

pub fn version() -> Resp {
    let v = env!("CARGO_PKG_VERSION");
    let api = berth_api::API_VERSION;
    let min = berth_api::MIN_API_VERSION;
    json(
        StatusCode::OK,
        &json!({
            "Platform": {"Name": "Berth Engine"},
            "Components": [{"Name": "Engine", "Version": v, "Details": {
                "ApiVersion": api, "MinAPIVersion": min, "Os": "linux", "Arch": arch(),
                "KernelVersion": kernel(), "GitCommit": "", "GoVersion": "",
                "Experimental": "false", "BuildTime": ""}}],
            "Version": v,
            "ApiVersion": api,
            "MinAPIVersion": min,
            "GitCommit": "",
            "GoVersion": "",
            "Os": "linux",
            "Arch": arch(),
            "KernelVersion": kernel(),
            "BuildTime": "",
        }),
    )
}

fn arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

/// `Driver` and `DriverStatus` as dockerd's storage drivers report themselves.
fn storage_driver(engine: &Engine) -> (&'static str, serde_json::Value) {
    use berth_image::import::Backend;
    let backend = engine.images.store.backend();
    let status = match backend {
        Backend::Btrfs => json!([["Btrfs", ""]]),
        Backend::Copy => serde_json::Value::Null,
        Backend::Overlay | Backend::Auto => json!([
            [
                "Backing Filesystem",
                backing_filesystem(&engine.config.data_root)
            ],
            ["Supports d_type", "true"]
        ]),
    };
    (backend.driver_name(), status)
}

/// The name dockerd gives the filesystem under `path` (its `FsNames`, for the usual ones).
fn backing_filesystem(path: &std::path::Path) -> &'static str {
    let Ok(stat) = rustix::fs::statfs(path) else {
        return "<unknown>";
    };
    #[allow(clippy::unnecessary_cast)] // f_type's type differs between targets
    match stat.f_type as i64 {
        0xEF53 => "extfs",
        0x9123_683E => "btrfs",
        0x5846_5342 => "xfs",
        0x0102_1994 => "tmpfs",
        0x2FC1_2FC1 => "zfs",
        0x794C_7630 => "overlayfs",
        _ => "<unknown>",
    }
}

/// `Runtimes` of `/info`: Berth's own and the foreign ones, with their `runtimeArgs` when they
/// have some (dockerd leaves the key out otherwise).
fn runtimes(engine: &Engine) -> serde_json::Value {
    let mut all = serde_json::Map::new();
    all.insert(
        berth_engine::DEFAULT_RUNTIME.into(),
        json!({"path": "berth-runtime"}),
    );
    for (name, foreign) in &engine.config.runtimes {
        let mut r = json!({ "path": foreign.path });
        if !foreign.args.is_empty() {
            r["runtimeArgs"] = json!(foreign.args);
        }
        all.insert(name.clone(), r);
    }
    serde_json::Value::Object(all)
}

pub fn info(engine: &Engine) -> Resp {
    let (driver, driver_status) = storage_driver(engine);
    let containers = engine.containers.all();
    let running = containers.iter().filter(|c| c.is_running()).count();
    let paused = containers
        .iter()
        .filter(|c| c.state.status == berth_engine::container::Status::Paused)
        .count();
    let images = engine.images.list().map(|l| l.len()).unwrap_or(0);
    let hostname = rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .into_owned();
    let ncpu = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| {
                    l.split_whitespace()
                        .nth(1)
                        .and_then(|k| k.parse::<u64>().ok())
                })
        })
        .unwrap_or(0)
        * 1024;
    let cgroup_version = if std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        "2"
    } else {
        "1"
    };
    json(
        StatusCode::OK,
        &json!({
            "ID": "berth",
            "Containers": containers.len(),
            "ContainersRunning": running - paused.min(running),
            "ContainersPaused": paused,
            "ContainersStopped": containers.len() - running,
            "Images": images,
            "Driver": driver,
            "DriverStatus": driver_status,
            "Plugins": {"Volume": engine.volume_drivers(), "Network": ["bridge", "host", "null"],
                        "Authorization": null, "Log": berth_engine::logs::driver::plugins()},
            "GenericResources": null, "KernelMemoryTCP": false,
            "MemoryLimit": true, "SwapLimit": true, "KernelMemory": false,
            "CpuCfsPeriod": true, "CpuCfsQuota": true, "CPUShares": true, "CPUSet": true,
            "PidsLimit": true, "IPv4Forwarding": true, "BridgeNfIptables": false,
            "BridgeNfIp6tables": false, "Debug": false, "NFd": open_descriptors(),
            "OomKillDisable": true,
            // dockerd's goroutines: berthd's tasks that are alive (a task left behind by a
            // client that went shows here).
            "NGoroutines": tokio::runtime::Handle::current().metrics().num_alive_tasks(),
            "SystemTime": berth_engine::container::now_rfc3339(),
            "LoggingDriver": engine.config.default_log.driver, "CgroupDriver": "cgroupfs",
            "CgroupVersion": cgroup_version, "NEventsListener": engine.events.listeners(),
            "KernelVersion": kernel(), "OperatingSystem": os_name(), "OSVersion": "",
            "OSType": "linux", "Architecture": std::env::consts::ARCH,
            "IndexServerAddress": "https://index.docker.io/v1/",
            "RegistryConfig": {
                "AllowNondistributableArtifactsCIDRs": [],
                "AllowNondistributableArtifactsHostnames": [],
                "InsecureRegistryCIDRs": ["127.0.0.0/8"],
                "IndexConfigs": {"docker.io": {"Name": "docker.io", "Mirrors": engine.config.registry_mirrors, "Secure": true, "Official": true}},
                "Mirrors": engine.config.registry_mirrors},
            "NCPU": ncpu, "MemTotal": mem,
            "DockerRootDir": engine.config.data_root,
            "HttpProxy": "", "HttpsProxy": "", "NoProxy": "",
            "Name": hostname, "Labels": [], "ExperimentalBuild": false,
            "ServerVersion": env!("CARGO_PKG_VERSION"),
            "Runtimes": runtimes(engine),
            "DefaultRuntime": engine.config.default_runtime,
            "Swarm": {"NodeID": "", "NodeAddr": "", "LocalNodeState": "inactive",
                      "ControlAvailable": false, "Error": "", "RemoteManagers": null},
            "LiveRestoreEnabled": true, "Isolation": "", "InitBinary": "berth-init",
            "ContainerdCommit": {"ID": "", "Expected": ""},
            "RuncCommit": {"ID": "", "Expected": ""}, "InitCommit": {"ID": "", "Expected": ""},
            "SecurityOptions": security_options(engine),
            "Warnings": [],
        }),
    )
}

/// `docker info`'s security options: seccomp's profile, and `name=userns` with remapping.
fn security_options(engine: &berth_engine::Engine) -> Vec<String> {
    let mut options = vec![format!(
        "name=seccomp,profile={}",
        engine.config.seccomp_profile.name()
    )];
    if engine.config.userns_remap.is_some() {
        options.push("name=userns".to_string());
    }
    options
}

fn os_name() -> String {
    std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|t| {
            t.lines().find_map(|l| {
                l.strip_prefix("PRETTY_NAME=")
                    .map(|v| v.trim_matches('"').to_string())
            })
        })
        .unwrap_or_else(|| "Linux".into())
}

/// `GET /events?since=&until=&filters=`: past events since `since`, then live ones until
/// `until` (or until the client goes).
pub fn events(engine: &Engine, query: Option<&str>) -> Resp {
    let q = route::query(query);
    let filters = match crate::http::filters(&q) {
        Ok(f) => f,
        Err(resp) => return resp,
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0);
    let time_arg = |k: &str| q.get(k).and_then(|v| parse_time(v, now));
    let since = time_arg("since");
    let until = time_arg("until");
    let (past, mut live) = engine.events.subscribe();
    let (tx, body) = channel();
    tokio::spawn(async move {
        let send = |e: &EventMessage| {
            let mut line = serde_json::to_vec(&legacy_fields(e)).unwrap_or_default();
            line.push(b'\n');
            Bytes::from(line)
        };
        let t = |e: &EventMessage| e.time_nano.unwrap_or(0) as f64 / 1e9;
        if let Some(s) = since {
            for e in past
                .iter()
                .filter(|e| t(e) >= s && until.is_none_or(|u| t(e) <= u))
            {
                if berth_engine::events::matches(e, &filters) && tx.send(send(e)).await.is_err() {
                    return;
                }
            }
        }
        loop {
            let wait = match until {
                // `until` is the client's number: any f64 (1e300, inf; NaN is never after).
                Some(u) => std::time::Duration::try_from_secs_f64((u - now_secs()).max(0.0))
                    .unwrap_or(std::time::Duration::MAX),
                None => std::time::Duration::MAX,
            };
            // A client that went ends the stream now, not at the next event it would get.
            let next = tokio::select! {
                next = tokio::time::timeout(wait, live.recv()) => next,
                () = tx.closed() => return,
            };
            match next {
                Ok(Ok(e)) => {
                    if until.is_some_and(|u| t(&e) > u) {
                        return;
                    }
                    if berth_engine::events::matches(&e, &filters)
                        && tx.send(send(&e)).await.is_err()
                    {
                        return;
                    }
                }
                Ok(Err(tokio::sync::broadcast::error::RecvError::Lagged(_))) => continue,
                _ => return,
            }
        }
    });
    response(StatusCode::OK, Some("application/json"), body)
}

/// berthd's open descriptors (`NFd`).
fn open_descriptors() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count().saturating_sub(1))
}

fn now_secs() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Unix seconds (`1700000000`, `1700000000.5`), or a duration before now (`10m`).
fn parse_time(v: &str, now: f64) -> Option<f64> {
    if let Ok(s) = v.parse::<f64>() {
        return Some(s);
    }
    humantime::parse_duration(v)
        .ok()
        .map(|d| now - d.as_secs_f64())
        .or_else(|| {
            humantime::parse_rfc3339_weak(v)
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map(|d| d.as_secs_f64())
        })
}

/// Adds the pre-1.22 fields (`status`, `id`, `from`) dockerd still sends for containers.
fn legacy_fields(e: &EventMessage) -> serde_json::Value {
    let mut v = serde_json::to_value(e).unwrap_or_default();
    let actor = e.actor.clone().unwrap_or_default();
    if e.typ.map(|t| t.to_string()).as_deref() == Some("container") {
        v["status"] = json!(e.action);
        v["id"] = json!(actor.id);
        v["from"] = json!(actor.attributes.unwrap_or_default().get("image"));
    }
    v
}

/// What dockerd says of swarm mode outside a swarm (`daemon/cluster/errors.go`).
pub const NOT_IN_SWARM: &str = "This node is not part of a swarm";
pub const NOT_A_MANAGER: &str = "This node is not a swarm manager. Use \"docker swarm init\" or \"docker swarm join\" to connect this node to swarm and try again.";

/// Routes of features Berth does not have, answered as a dockerd without them answers: swarm
/// mode as a node outside any swarm (503), plugins as a daemon with none installed.
pub fn unsupported(route: &route::Route) -> Resp {
    use route::{Route, SwarmCall};
    let unavailable = StatusCode::SERVICE_UNAVAILABLE;
    match route {
        Route::Swarm(SwarmCall::Leave) => crate::http::error(unavailable, NOT_IN_SWARM),
        Route::Swarm(SwarmCall::Join) => crate::http::error(
            unavailable,
            "swarm mode is not available: Berth runs containers on this node alone",
        ),
        Route::Swarm(SwarmCall::Manager) => crate::http::error(unavailable, NOT_A_MANAGER),
        Route::Swarm(SwarmCall::VolumeUpdate) => crate::http::error(
            unavailable,
            "volume update only valid for cluster volumes, but swarm is unavailable",
        ),
        Route::PluginList => json(StatusCode::OK, &json!([])),
        Route::Plugin(name) => crate::http::error(
            StatusCode::NOT_FOUND,
            &format!("plugin \"{name}\" not found"),
        ),
        _ => crate::http::error(
            StatusCode::NOT_IMPLEMENTED,
            "plugins are not supported by Berth",
        ),
    }
}
