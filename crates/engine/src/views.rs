//! Containers as the API shows them: `GET /containers/{id}/json` and `GET /containers/json`
//! (with Docker's filters and its "Up 5 seconds" / "Exited (0) 3 seconds ago" status text).

use std::time::{Duration, SystemTime};

use berth_api::models::{
    ContainerInspectResponse, ContainerState, ContainerStateStatusEnum, ContainerSummary,
    ContainerSummaryHostConfig, ContainerSummaryNetworkSettings, ContainerSummaryStateEnum,
    DriverData,
};
use berth_api::query::Filters;

use crate::container::{Container, Status};
use crate::error::{EngineError, Result};
use crate::Engine;

impl Engine {
    /// `GET /containers/{id}/json`.
    pub fn inspect(&self, key: &str) -> Result<ContainerInspectResponse> {
        let c = self.containers.get(key)?;
        let data = self.data_dir(&c.id);
        let status = match c.state.status {
            Status::Created => ContainerStateStatusEnum::CREATED,
            Status::Running => ContainerStateStatusEnum::RUNNING,
            Status::Paused => ContainerStateStatusEnum::PAUSED,
            Status::Restarting => ContainerStateStatusEnum::RESTARTING,
            Status::Removing => ContainerStateStatusEnum::REMOVING,
            Status::Exited => ContainerStateStatusEnum::EXITED,
            Status::Dead => ContainerStateStatusEnum::DEAD,
        };
        Ok(ContainerInspectResponse {
            id: Some(c.id.clone()),
            created: Some(c.created.clone()),
            path: Some(c.path.clone()),
            args: Some(c.args.clone()),
            state: Some(ContainerState {
                status: Some(status),
                // dockerd counts a restarting container as running (with no pid).
                running: Some(c.is_running()),
                paused: Some(c.state.status == Status::Paused),
                restarting: Some(c.state.status == Status::Restarting),
                oom_killed: Some(c.state.oom_killed),
                dead: Some(c.state.status == Status::Dead),
                pid: Some(c.state.pid),
                exit_code: Some(c.state.exit_code),
                error: Some(c.state.error.clone()),
                started_at: Some(c.state.started_at.clone()),
                finished_at: Some(c.state.finished_at.clone()),
                health: self.health_of(&c.id).map(|h| crate::health::api_health(&h)),
            }),
            image: Some(c.image_id.clone()),
            resolv_conf_path: Some(data.join("resolv.conf").display().to_string()),
            hostname_path: Some(data.join("hostname").display().to_string()),
            hosts_path: Some(data.join("hosts").display().to_string()),
            // As dockerd: the path of a json-file log only.
            log_path: Some(match crate::logs::driver::driver_of(&c.host_config) {
                crate::logs::driver::LOCAL | crate::logs::driver::NONE => String::new(),
                _ => c.log_path.display().to_string(),
            }),
            name: Some(format!("/{}", c.name)),
            restart_count: Some(c.restart_count as i64),
            driver: Some(self.images.store.backend().driver_name().to_string()),
            platform: Some("linux".to_string()),
            mount_label: Some(String::new()),
            process_label: Some(String::new()),
            app_armor_profile: Some(String::new()),
            exec_ids: None,
            host_config: Some({
                let mut hc = crate::wire::spec::host_model(&c.host_config);
                hc.links = self.inspect_links(&c);
                hc
            }),
            graph_driver: Some(DriverData {
                name: self.images.store.backend().driver_name().to_string(),
                data: Default::default(),
            }),
            mounts: Some(crate::mounts::mount_points(
                &c,
                &crate::volumes::root(self.data_root()),
            )),
            config: Some(crate::wire::spec::config_model(&c.config)),
            network_settings: Some(self.network_settings(&c)),
            ..Default::default()
        })
    }

    /// `GET /containers/{id}/json` as it goes on the wire: the model with every field dockerd
    /// fills ([`crate::wire`]) and the top-level `NetworkSettings` fields of API < 1.44.
    pub fn inspect_json(&self, key: &str) -> Result<serde_json::Value> {
        let model = self.inspect(key)?;
        let id = model.id.clone().unwrap_or_default();
        let mut exec_ids: Vec<String> = self
            .execs_lock()
            .iter()
            .filter(|(_, e)| e.container == id)
            .map(|(exec, _)| exec.clone())
            .collect();
        exec_ids.sort();
        let snapshots = &self.images.store.snapshots;
        let graph_data = match snapshots.graph_data(&format!("container-{id}")) {
            Ok(mut data) => {
                let merged = self.run_dir(&id).join("rootfs");
                data.push(("MergedDir", merged.display().to_string()));
                Some(data)
            }
            // Not started yet: the rootfs is prepared at the first start, on the image's layers.
            Err(_) => self.containers.get(&id).ok().and_then(|c| {
                let top = c.image_top.as_deref()?;
                let image = snapshots.graph_data(top).ok()?;
                let lower = image
                    .iter()
                    .filter(|(k, _)| *k == "UpperDir" || *k == "LowerDir")
                    .map(|(_, p)| p.as_str())
                    .collect::<Vec<_>>()
                    .join(":");
                Some(vec![
                    ("LowerDir", lower),
                    ("MergedDir", String::new()),
                    ("UpperDir", String::new()),
                    ("WorkDir", String::new()),
                ])
            }),
        };
        // API < 1.44's `Config.MacAddress`: the first network's asked address.
        let mac_address = self
            .containers
            .get(&id)
            .ok()
            .and_then(|c| c.networks.endpoints.first().and_then(|e| e.mac.clone()));
        Ok(crate::wire::container_inspect(
            &model,
            crate::wire::ContainerExtras {
                runtime: crate::DEFAULT_RUNTIME,
                exec_ids,
                graph_data,
                mac_address,
                masked_paths: crate::spec::MASKED_PATHS,
                readonly_paths: crate::spec::READONLY_PATHS,
            },
        ))
    }

    /// `GET /containers/json?all=&limit=&filters=`.
    pub fn list(
        &self,
        all: bool,
        limit: Option<usize>,
        filters: &Filters,
    ) -> Result<Vec<ContainerSummary>> {
        for key in filters.0.keys() {
            if !matches!(
                key.as_str(),
                "status"
                    | "name"
                    | "label"
                    | "id"
                    | "ancestor"
                    | "exited"
                    | "before"
                    | "since"
                    | "network"
                    | "health"
            ) {
                return Err(EngineError::InvalidParameter(format!(
                    "invalid filter '{key}'"
                )));
            }
        }
        for v in filters.get("health") {
            if !matches!(v.as_str(), "starting" | "healthy" | "unhealthy" | "none") {
                return Err(EngineError::InvalidParameter(format!(
                    "Unrecognised filter value for health: {v}"
                )));
            }
        }
        let mut containers = self.containers.all();
        containers.sort_by(|a, b| b.created.cmp(&a.created));
        let links = self.link_names_by_child();
        // `all` is implied by filters that only match stopped containers.
        let all = all || filters.has("status") || filters.has("exited");
        let mut out = Vec::new();
        for c in containers {
            if c.is_cri() || !all && !c.is_running() {
                continue;
            }
            if !self.matches(&c, filters) {
                continue;
            }
            out.push(summary(self, &c, &links));
            if limit.is_some_and(|l| l > 0 && out.len() >= l) {
                break;
            }
        }
        Ok(out)
    }

    fn matches(&self, c: &Container, f: &Filters) -> bool {
        let any = |key: &str, pred: &dyn Fn(&str) -> bool| {
            let values = f.get(key);
            values.is_empty() || values.iter().any(|v| pred(v))
        };
        let health = match self.health_of(&c.id) {
            Some(h) if c.is_running() => h.status.as_str(),
            _ => "none",
        };
        any("status", &|v| v == c.state.status.as_str())
            && any("health", &|v| v == health)
            && any("name", &|v| c.name.contains(v.trim_start_matches('/')))
            && any("id", &|v| c.id.starts_with(v))
            && any("exited", &|v| {
                c.state.status == Status::Exited && v.parse::<i64>().ok() == Some(c.state.exit_code)
            })
            && f.labels_match(|k| {
                let labels = c.config.labels.as_ref()?;
                labels.get(k).map(String::as_str)
            })
            && any("network", &|v| {
                c.networks.endpoints.iter().any(|e| {
                    e.name == v || (!e.network_id.is_empty() && e.network_id.starts_with(v))
                })
            })
            && any("ancestor", &|v| {
                c.config.image.as_deref() == Some(v)
                    || self
                        .images
                        .resolve(v)
                        .is_ok_and(|i| i.id.to_string() == c.image_id)
            })
    }
}

/// `links`: the link names of the containers (`Engine::link_names_by_child`).
fn summary(
    engine: &Engine,
    c: &Container,
    links: &std::collections::HashMap<String, Vec<String>>,
) -> ContainerSummary {
    let mut command = vec![c.path.clone()];
    command.extend(c.args.iter().cloned());
    let state = match c.state.status {
        Status::Created => ContainerSummaryStateEnum::CREATED,
        Status::Running => ContainerSummaryStateEnum::RUNNING,
        Status::Paused => ContainerSummaryStateEnum::PAUSED,
        Status::Restarting => ContainerSummaryStateEnum::RESTARTING,
        Status::Removing => ContainerSummaryStateEnum::REMOVING,
        Status::Exited => ContainerSummaryStateEnum::EXITED,
        Status::Dead => ContainerSummaryStateEnum::DEAD,
    };
    ContainerSummary {
        id: Some(c.id.clone()),
        names: Some(
            std::iter::once(format!("/{}", c.name))
                .chain(links.get(&c.id).into_iter().flatten().cloned())
                .collect(),
        ),
        image: c.config.image.clone(),
        image_id: Some(c.image_id.clone()),
        command: Some(
            command
                .iter()
                .map(|a| quote_arg(a))
                .collect::<Vec<_>>()
                .join(" "),
        ),
        created: Some(secs(&c.created)),
        ports: Some(crate::network::summary_ports(c)),
        labels: Some(c.config.labels.clone().unwrap_or_default()),
        state: Some(state),
        status: Some(status_text(c, engine.health_of(&c.id).map(|h| h.status))),
        host_config: Some(ContainerSummaryHostConfig {
            network_mode: Some(
                c.host_config
                    .network_mode
                    .clone()
                    .unwrap_or_else(|| "default".into()),
            ),
            ..Default::default()
        }),
        network_settings: Some(ContainerSummaryNetworkSettings {
            networks: Some(crate::network::summary_networks(engine, c)),
        }),
        mounts: Some(crate::mounts::mount_points(
            c,
            &crate::volumes::root(engine.data_root()),
        )),
        ..Default::default()
    }
}

/// An argument as dockerd shows it in the `Command` column: shell-quoted when it holds blanks
/// or quotes.
fn quote_arg(a: &str) -> String {
    if !a.is_empty()
        && !a
            .chars()
            .any(|c| c.is_whitespace() || c == '\'' || c == '"')
    {
        return a.to_string();
    }
    format!("'{}'", a.replace('\'', "'\\''"))
}

fn secs(rfc3339: &str) -> i64 {
    humantime::parse_rfc3339_weak(rfc3339)
        .ok()
        .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Docker's status column.
fn status_text(c: &Container, health: Option<berth_monitor::protocol::HealthStatus>) -> String {
    let since = |t: &str| {
        let then = SystemTime::UNIX_EPOCH + Duration::from_secs(secs(t).max(0) as u64);
        human_duration(SystemTime::now().duration_since(then).unwrap_or_default())
    };
    match c.state.status {
        Status::Created => "Created".to_string(),
        Status::Running => match health {
            Some(berth_monitor::protocol::HealthStatus::Starting) => {
                format!("Up {} (health: starting)", since(&c.state.started_at))
            }
            Some(h) => format!("Up {} ({})", since(&c.state.started_at), h.as_str()),
            None => format!("Up {}", since(&c.state.started_at)),
        },
        Status::Paused => format!("Up {} (Paused)", since(&c.state.started_at)),
        Status::Restarting => format!(
            "Restarting ({}) {} ago",
            c.state.exit_code,
            since(&c.state.finished_at)
        ),
        Status::Removing => "Removal In Progress".to_string(),
        Status::Exited => format!(
            "Exited ({}) {} ago",
            c.state.exit_code,
            since(&c.state.finished_at)
        ),
        Status::Dead => "Dead".to_string(),
    }
}

/// go-units `HumanDuration`: "Less than a second", "5 seconds", "About a minute", "3 hours"...
pub fn human_duration(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0 => "Less than a second".into(),
        1 => "1 second".into(),
        2..60 => format!("{s} seconds"),
        60..120 => "About a minute".into(),
        120..3600 => format!("{} minutes", s / 60),
        3600..7200 => "About an hour".into(),
        7200..172_800 => format!("{} hours", s / 3600),
        172_800..1_209_600 => format!("{} days", s / 86400),
        1_209_600..5_259_600 => format!("{} weeks", s / 604_800),
        5_259_600..63_115_200 => format!("{} months", s / 2_629_800),
        _ => format!("{} years", s / 31_557_600),
    }
}
