//! `POST /containers/create`: a container record from Docker's create body and its image.

use berth_api::models::{ContainerCreateBody, EventMessageTypeEnum};

use crate::container::spec::HostSpec;
use crate::container::{now_rfc3339, Container, State, NEVER};
use crate::error::{EngineError, Result};
use crate::{ids, Engine};

impl Engine {
    /// Creates a container named `name` (or a generated name); returns its id and warnings.
    pub fn create(
        &self,
        name: Option<&str>,
        body: ContainerCreateBody,
    ) -> Result<(String, Vec<String>)> {
        let name = match name.filter(|n| !n.is_empty()) {
            Some(n) => {
                let n = n.strip_prefix('/').unwrap_or(n);
                if !ids::valid_name(n) {
                    return Err(EngineError::InvalidParameter(format!(
                        "Invalid container name ({n}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
                    )));
                }
                n.to_string()
            }
            None => String::new(),
        };
        let image_ref = body.image.clone().unwrap_or_default();
        if image_ref.is_empty() {
            return Err(EngineError::InvalidParameter(
                "config cannot be empty in order to create a container".into(),
            ));
        }
        // The request's `HostConfig` in the engine's types (`{}` when it has none).
        let mut host = crate::wire::spec::host_of_body(&body);
        // dockerd checks `Mounts` and the log driver before it looks the image up, `Binds`
        // after.
        if body.host_config.is_some() {
            crate::mounts::check_mounts(&host)?;
            crate::logs::driver::check_create(&host)
                .map_err(|e| EngineError::InvalidParameter(e.to_string()))?;
            // The CRI's log format is for the CRI's containers: to the Docker API it is a
            // driver that does not exist, as to dockerd.
            let cri_log = crate::logs::driver::driver_of(&host) == crate::logs::driver::CRI;
            let from_cri = body
                .labels
                .as_ref()
                .is_some_and(|l| l.contains_key(crate::container::CRI_LABEL));
            if cri_log && !from_cri {
                return Err(EngineError::InvalidParameter(
                    crate::logs::driver::DriverError::Unknown(crate::logs::driver::CRI.into())
                        .to_string(),
                ));
            }
            if host.storage_opt.as_ref().is_some_and(|o| !o.is_empty()) {
                // No snapshotter here has quotas: dockerd's words for overlay2 without them.
                let driver = self.images.store.backend().driver_name();
                return Err(EngineError::Internal(match driver {
                    "overlay2" => {
                        "--storage-opt is supported only for overlay over xfs with 'pquota' mount option".to_string()
                    }
                    d => format!("--storage-opt is not supported by the {d} storage driver"),
                }));
            }
        }
        if let Some(v) = host.oom_score_adj.filter(|v| !(-1000..=1000).contains(v)) {
            return Err(EngineError::InvalidParameter(format!(
                "Invalid value {v}, range for oom score adj is [-1000, 1000]"
            )));
        }
        // (dockerd checks the runtime with the rest of the host config, before the image.)
        crate::userns::check_mode(&host).map_err(EngineError::InvalidParameter)?;
        if self.config.userns_remap.is_some() {
            crate::userns::Remap::check(&host).map_err(EngineError::InvalidParameter)?;
        }
        self.check_runtime(&host)?;
        crate::sharing::check_create(&host, body.hostname.as_deref())?;
        let image = self.images.resolve(&image_ref)?;
        // The daemon's default driver and options, as inspect then shows them (build steps'
        // containers, made by `create_from` alone, keep json-file: the build reads their log).
        crate::logs::driver::merge_default(&mut host, &self.config.default_log)
            .map_err(|e| EngineError::InvalidParameter(e.to_string()))?;
        self.create_from(name, &body, host, image)
    }

    /// Creates a container named `name` (an empty name: a generated one) of `image` (already
    /// resolved: an image of the store, or a build step's), with host config `host_config`
    /// (the body's, made the engine's); `body.image` is what the record says it was created
    /// from.
    pub(crate) fn create_from(
        &self,
        name: String,
        body: &ContainerCreateBody,
        mut host_config: HostSpec,
        image: crate::images::Resolved,
    ) -> Result<(String, Vec<String>)> {
        let image_ref = body.image.clone().unwrap_or_default();
        let image_config = &image.config["config"];
        let strings = |v: &serde_json::Value| -> Option<Vec<String>> {
            v.as_array().map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(str::to_string))
                    .collect()
            })
        };
        // An entrypoint given (even empty) replaces the image's, and then its cmd too.
        let (entrypoint, cmd) = match &body.entrypoint {
            Some(ep) => (ep.clone(), body.cmd.clone().unwrap_or_default()),
            None => (
                strings(&image_config["Entrypoint"]).unwrap_or_default(),
                body.cmd
                    .clone()
                    .or_else(|| strings(&image_config["Cmd"]))
                    .unwrap_or_default(),
            ),
        };
        let mut argv = entrypoint;
        argv.extend(cmd);
        if argv.is_empty() || argv[0].is_empty() {
            return Err(EngineError::InvalidParameter("No command specified".into()));
        }
        let mut config = crate::wire::spec::spec_of_body(body);
        config.image = Some(image_ref.clone());
        if config.cmd.is_none() && body.entrypoint.is_none() {
            config.cmd = strings(&image_config["Cmd"]);
        }
        if config.entrypoint.is_none() {
            config.entrypoint = strings(&image_config["Entrypoint"]);
        }
        if config.working_dir.as_deref().unwrap_or("").is_empty() {
            config.working_dir = image_config["WorkingDir"].as_str().map(str::to_string);
        }
        crate::health::merge_image(&mut config, image_config);
        crate::health::validate(&config)?;
        let mut env: Vec<String> = strings(&image_config["Env"]).unwrap_or_default();
        env.extend(body.env.clone().unwrap_or_default());
        config.env = Some(env);
        // As dockerd: the record names its runtime, the default one when none was asked.
        host_config.runtime = Some(self.check_runtime(&host_config)?);
        // As dockerd 20.10 (`default-ipc-mode` private): the record says which it got.
        if host_config.ipc_mode.as_deref().unwrap_or("").is_empty() {
            host_config.ipc_mode = Some("private".to_string());
        }
        // The mounts are checked before anything else is made (networks check theirs too).
        crate::mounts::plan(&host_config, &[], crate::mounts::Check::Create)?;
        crate::network::merge_exposed_ports(&mut config, image_config);
        let (networks, warnings) = self.networks_for_create(body, &host_config)?;
        let id = ids::new_id();
        if config.hostname.as_deref().unwrap_or("").is_empty() {
            config.hostname = Some(self.default_hostname(&host_config, &id));
            // In another container's UTS namespace (the engine's own `container:X`): its name.
            if let Some(crate::sharing::NsMode::Container(other)) =
                crate::sharing::uts_mode(&host_config)
            {
                if let Some(name) = self
                    .containers
                    .get(&other)
                    .ok()
                    .and_then(|o| o.config.hostname)
                {
                    config.hostname = Some(name);
                }
            }
        }
        let log_path = self.data_dir(&id).join(format!("{id}-json.log"));
        let anonymous_volumes = self.create_mounts(&config, &host_config, image_config)?;
        let container = Container {
            id: id.clone(),
            name: name.clone(),
            created: now_rfc3339(),
            image_id: image.id.to_string(),
            image_manifest: image.manifest.to_string(),
            image_top: chain_top(&image.config),
            path: argv[0].clone(),
            args: argv[1..].to_vec(),
            config,
            host_config,
            state: State {
                started_at: NEVER.into(),
                finished_at: NEVER.into(),
                ..Default::default()
            },
            restart_count: 0,
            restart_delay_ms: 0,
            manually_stopped: false,
            log_path,
            networks,
            anonymous_volumes,
        };
        // An empty name: one is drawn under the store's lock.
        let placed = if name.is_empty() {
            self.containers
                .insert_with_drawn_name(container.clone(), ids::generate_name)
        } else {
            self.containers.insert(container.clone()).map(|()| name)
        };
        let name = match placed {
            Ok(name) => name,
            Err(e) => {
                self.remove_anonymous_volumes(&container);
                return Err(e);
            }
        };
        if image.name.as_deref() != Some(NO_IMAGE) {
            if let Err(e) = self.images.store.metadata.add_user(&image.manifest, &id) {
                tracing::warn!(error = %e, "recording the image's user");
            }
        }
        self.events.publish(
            EventMessageTypeEnum::CONTAINER,
            "create",
            &id,
            [("name".to_string(), name), ("image".to_string(), image_ref)].into(),
        );
        Ok((id, warnings))
    }
}

/// What a container made without an image ([`Engine::create_imageless`]) names as its image.
pub const NO_IMAGE: &str = "<none>";

impl Engine {
    /// Creates a container with no image: an empty root filesystem, where what the container
    /// runs is bound in from the host (the CRI's pod sandboxes run berth-init's pause mode
    /// at `/dev/init`). The body's `Image` is ignored; its command is required.
    pub fn create_imageless(&self, name: &str, body: ContainerCreateBody) -> Result<String> {
        if !ids::valid_name(name) {
            return Err(EngineError::InvalidParameter(format!(
                "Invalid container name ({name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
            )));
        }
        let host = crate::wire::spec::host_of_body(&body);
        crate::mounts::check_mounts(&host)?;
        self.check_runtime(&host)?;
        let config = serde_json::json!({
            "config": {},
            "rootfs": {"type": "layers", "diff_ids": []},
        });
        let bytes = serde_json::to_vec(&config).map_err(|e| EngineError::internal("encode", e))?;
        let id = berth_image::digest::Digest::of(&bytes);
        let image = crate::images::Resolved {
            name: Some(NO_IMAGE.to_string()),
            manifest: id.clone(),
            id,
            config,
            layers: Vec::new(),
        };
        let body = ContainerCreateBody {
            image: Some(NO_IMAGE.to_string()),
            ..body
        };
        self.create_from(name.to_string(), &body, host, image)
            .map(|(id, _)| id)
    }
}

/// The chain id of the image's top layer, from its config's diff_ids.
pub(crate) fn chain_top(config: &serde_json::Value) -> Option<String> {
    let mut parent: Option<berth_image::digest::Digest> = None;
    for d in config["rootfs"]["diff_ids"].as_array()? {
        let diff: berth_image::digest::Digest = d.as_str()?.parse().ok()?;
        parent = Some(berth_image::unpack::chain_id(parent.as_ref(), &diff));
    }
    parent.map(|p| p.to_string())
}
