//! Opening the networks when berthd starts: the `Networks` of the data root, the containers
//! that no longer run detached, the default `bridge` network as berthd's flags want it, the ids
//! of `host` and `none`, and the DNS servers of the containers that kept running.

use super::*;

impl Engine {
    /// Opens the networks of the data root (berthd, once, before [`Engine::reconcile`]):
    /// containers that do not run any more are detached, the default bridge is made (again,
    /// when `--bridge` or `--bip` changed and nothing is attached to it).
    pub async fn open_networks(&self, cfg: NetworkConfig) -> Result<()> {
        let mut config = berth_network::Config::new(&self.config.data_root);
        config.table = cfg.table.clone();
        let state_dir = config.state_dir.clone();
        let mut networks = Networks::open(config).await.map_err(net_error)?;
        if let Some(path) = cfg.cni_path.clone() {
            networks.set_cni(berth_network::cni::Cni::new().with_path(path));
        }
        let running: BTreeSet<String> = self
            .containers
            .all()
            .into_iter()
            .filter(|c| c.is_running())
            .map(|c| c.id.clone())
            .collect();
        for (network, container) in networks
            .prune(|id| running.contains(id))
            .await
            .map_err(net_error)?
        {
            tracing::info!(%network, %container, "detached a container that no longer runs");
        }
        let wanted = NetworkSpec {
            name: DEFAULT_BRIDGE.to_string(),
            subnet: cfg.bip.map(|b| b.trunc()),
            gateway: cfg.bip.map(|b| b.addr()),
            ipv6: cfg.ipv6,
            subnet6: cfg.fixed_cidr_v6.map(|n| n.trunc()),
            pool6_seed: api::machine_id(),
            options: [
                (OPT_BRIDGE_NAME, cfg.bridge.as_str()),
                ("com.docker.network.bridge.default_bridge", "true"),
                ("com.docker.network.bridge.enable_icc", "true"),
                ("com.docker.network.bridge.enable_ip_masquerade", "true"),
                ("com.docker.network.bridge.host_binding_ipv4", "0.0.0.0"),
                ("com.docker.network.driver.mtu", "1500"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
            default_bridge: true,
            ..Default::default()
        };
        let existing = networks
            .list()
            .await
            .into_iter()
            .find(|n| n.name == DEFAULT_BRIDGE);
        let keep = existing.as_ref().is_some_and(|n| {
            n.bridge == cfg.bridge
                && cfg
                    .bip
                    .is_none_or(|b| b.trunc() == n.subnet && b.addr() == n.gateway)
                && n.v6.is_some() == cfg.ipv6
                && cfg.fixed_cidr_v6.is_none_or(|f| {
                    n.v6.as_ref()
                        .is_some_and(|v6| v6.subnet == f.trunc() && !v6.chosen)
                })
        });
        if let (Some(old), false) = (&existing, keep) {
            match networks.remove(&old.id).await {
                Ok(()) => tracing::info!("default bridge changed: made again"),
                Err(e) => tracing::warn!(error = %e, "keeping the old default bridge"),
            }
        }
        let has_bridge = networks
            .list()
            .await
            .iter()
            .any(|n| n.name == DEFAULT_BRIDGE);
        if !has_bridge {
            let made = match networks.create(wanted.clone()).await {
                // An interface of that name and no record (the state was removed while the
                // machine ran): taken over, as dockerd takes `docker0`.
                Err(NetworkError::BadBridge(..)) => {
                    let host = berth_network::netlink::Netlink::host().map_err(|e| {
                        EngineError::Internal(format!("creating the default bridge network: {e}"))
                    })?;
                    if let Err(e) = host.delete_link(&cfg.bridge).await {
                        tracing::warn!(bridge = %cfg.bridge, error = %e, "deleting a stale bridge");
                    }
                    networks.create(wanted).await
                }
                other => other,
            };
            made.map_err(|e| {
                EngineError::Internal(format!("creating the default bridge network: {e}"))
            })?;
        }
        let predefined = predefined(&state_dir)?;
        let cache = Mutex::new(networks.list().await);
        let state = Arc::new(NetState {
            networks,
            predefined,
            cache,
            dns: dns::Servers::default(),
        });
        self.restart_dns_servers(&state);
        self.net
            .set(state)
            .map_err(|_| EngineError::Internal("networks opened twice".into()))
    }
}

/// The ids of `host` and `none`, made once.
fn predefined(state_dir: &Path) -> Result<Predefined> {
    let path = state_dir.join("predefined.json");
    if let Some(p) = std::fs::read(&path)
        .ok()
        .and_then(|b| serde_json::from_slice::<Predefined>(&b).ok())
    {
        return Ok(p);
    }
    let p = Predefined {
        host: random_id()?,
        none: random_id()?,
        created: crate::container::now_rfc3339(),
    };
    let bytes = serde_json::to_vec(&p).map_err(|e| EngineError::internal("encode", e))?;
    let tmp = state_dir.join("predefined.json.tmp");
    std::fs::create_dir_all(state_dir)
        .and_then(|()| std::fs::write(&tmp, bytes))
        .and_then(|()| std::fs::rename(&tmp, &path))
        .map_err(|e| EngineError::internal(&format!("write {}", path.display()), e))?;
    Ok(p)
}
