//! Legacy links (`docker run --link NAME:ALIAS`, `HostConfig.Links`) on the default bridge, as
//! dockerd makes them: checked and recorded at create (the linked container by id, under the
//! link name `/PARENT/ALIAS`), refused at start when the linked container does not run or is
//! not on the default bridge, and then `/etc/hosts` entries (`IP  ALIAS HOSTNAME NAME`) and
//! the `ALIAS_PORT_80_TCP...`, `ALIAS_NAME`, `ALIAS_ENV_X` variables of dockerd's
//! `daemon/links`. A linked container that starts again updates the `hosts` of its running
//! parents. `DELETE /containers/{name}?link=1` removes a link by its name.
//!
//! On a user-defined network dockerd keeps no legacy link: `--link` there is an endpoint's
//! alias that the embedded DNS server resolves for that container alone (the endpoint's
//! `links`, see `dns`).

use super::*;

/// One legacy link of a container: the linked container's id and the alias.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LegacyLink {
    pub child: String,
    pub alias: String,
}

const HOST_AND_LINKS: &str =
    "conflicting options: host type networking can't be used with links. This would result in undefined behavior";
const CONTAINER_AND_LINKS: &str =
    "conflicting options: container type network can't be used with links. This would result in undefined behavior";

/// `NAME[:ALIAS]` (or the stored `/NAME:/PARENT/ALIAS`) as dockerd's `opts.ParseLink` reads it.
pub(super) fn parse_link(link: &str) -> Result<(String, String)> {
    let bad = |m: String| EngineError::InvalidParameter(m);
    if link.is_empty() {
        return Err(bad("empty string specified for links".into()));
    }
    let parts: Vec<&str> = link.split(':').collect();
    match parts.as_slice() {
        [name] => Ok((name.trim_start_matches('/').to_string(), name.to_string())),
        [name, alias] => match name.strip_prefix('/') {
            Some(stripped) => {
                let alias = alias.rsplit('/').next().unwrap_or_default();
                Ok((stripped.to_string(), alias.to_string()))
            }
            None => Ok((name.to_string(), alias.to_string())),
        },
        _ => Err(bad(format!("bad format for links: {link}"))),
    }
}

/// Whether `hc`'s network mode keeps legacy links (dockerd: every mode but a user-defined
/// network; host and `container:` refuse them).
fn legacy_mode(hc: &HostSpec) -> bool {
    match mode(hc) {
        Mode::Networks(n) => n == DEFAULT_BRIDGE,
        _ => true,
    }
}

/// `ALIAS_PORT...`, `ALIAS_NAME`, `ALIAS_ENV_...` for the link named `name` (`/PARENT/ALIAS`)
/// to a container at `ip` with `exposed` ports and environment `env`, as dockerd's
/// `links.Link.ToEnv`.
pub(super) fn link_env(name: &str, ip: &str, exposed: &[String], env: &[String]) -> Vec<String> {
    let last = name.rsplit('/').next().unwrap_or_default();
    let alias = last.to_uppercase().replace('-', "_");
    let mut ports: Vec<(u16, String)> = exposed
        .iter()
        .filter_map(|k| parse_port_key(k).ok())
        .map(|(port, proto)| (port, proto.to_string()))
        .collect();
    // TCP first, then by protocol and number.
    ports.sort_by(|a, b| {
        let rank = |p: &(u16, String)| (p.1 != "tcp", p.1.clone(), p.0);
        rank(a).cmp(&rank(b))
    });
    ports.dedup();
    let mut out = Vec::new();
    let mut start: Option<(u16, String)> = None;
    let mut end: Option<(u16, String)> = None;
    for (i, (num, proto)) in ports.iter().enumerate() {
        if i == 0 {
            start = Some((*num, proto.clone()));
            end = start.clone();
            out.push(format!("{alias}_PORT={proto}://{ip}:{num}"));
        }
        let prefix = format!("{alias}_PORT_{num}_{}", proto.to_uppercase());
        out.push(format!("{prefix}={proto}://{ip}:{num}"));
        out.push(format!("{prefix}_ADDR={ip}"));
        out.push(format!("{prefix}_PORT={num}"));
        out.push(format!("{prefix}_PROTO={proto}"));
        let continues = end
            .as_ref()
            .is_some_and(|(n, p)| u32::from(*num) == u32::from(*n) + 1 && p == proto);
        if continues {
            end = Some((*num, proto.clone()));
            if i + 1 < ports.len() {
                continue;
            }
        }
        if let (Some((s, sp)), Some((e, ep))) = (&start, &end) {
            if (s, sp) != (e, ep) {
                let prefix = format!("{alias}_PORT_{s}_{}", sp.to_uppercase());
                out.push(format!("{prefix}_START={sp}://{ip}:{s}"));
                out.push(format!("{prefix}_PORT_START={s}"));
                out.push(format!("{prefix}_END={ep}://{ip}:{e}"));
                out.push(format!("{prefix}_PORT_END={e}"));
            }
        }
        start = Some((*num, proto.clone()));
        end = start.clone();
    }
    out.push(format!("{alias}_NAME={name}"));
    for e in env {
        let Some((k, v)) = e.split_once('=') else {
            continue;
        };
        if k == "HOME" || k == "PATH" {
            continue;
        }
        out.push(format!("{alias}_ENV_{k}={v}"));
    }
    out
}

/// A linked container's live endpoint on the default bridge.
fn bridge_endpoint(child: &Container) -> Option<&berth_network::Endpoint> {
    child
        .networks
        .endpoints
        .iter()
        .find(|e| e.name == DEFAULT_BRIDGE)
        .and_then(|e| e.live.as_ref())
        .map(|l| &l.endpoint)
}

impl Engine {
    /// The legacy links of a new container with host config `hc`, checked as dockerd checks
    /// them at create.
    pub(super) fn links_for_create(&self, hc: &HostSpec) -> Result<Vec<LegacyLink>> {
        let links = hc.links.clone().unwrap_or_default();
        if links.is_empty() {
            return Ok(Vec::new());
        }
        match mode(hc) {
            Mode::Host => return Err(EngineError::InvalidParameter(HOST_AND_LINKS.into())),
            Mode::Container(_) => {
                return Err(EngineError::InvalidParameter(CONTAINER_AND_LINKS.into()))
            }
            _ => {}
        }
        if !legacy_mode(hc) {
            return Ok(Vec::new());
        }
        let mut out: Vec<LegacyLink> = Vec::new();
        for link in &links {
            let (name, alias) = parse_link(link)?;
            let not_found = |name: &str| {
                EngineError::InvalidParameter(format!(
                    "could not get container for {name}: No such container: {name}"
                ))
            };
            let mut child = self.containers.get(&name).map_err(|_| not_found(&name))?;
            // A container that shares another's namespace: the link is to that one.
            for _ in 0..8 {
                match mode(&child.host_config) {
                    Mode::Container(next) => {
                        child = self.containers.get(&next).map_err(|_| not_found(&next))?
                    }
                    _ => break,
                }
            }
            if mode(&child.host_config) == Mode::Host {
                return Err(EngineError::InvalidParameter(HOST_AND_LINKS.into()));
            }
            // dockerd keeps the first of two links under one name.
            if !out.iter().any(|l| l.alias == alias) {
                out.push(LegacyLink {
                    child: child.id.clone(),
                    alias,
                });
            }
        }
        Ok(out)
    }

    /// The links of `c` whose container still exists: (link name `/PARENT/ALIAS`, container).
    fn children(&self, c: &Container) -> Vec<(String, Container)> {
        c.networks
            .legacy_links
            .iter()
            .filter_map(|l| {
                let child = self.containers.get(&l.child).ok()?;
                Some((format!("/{}/{}", c.name, l.alias), child))
            })
            .collect()
    }

    /// Inspect's `HostConfig.Links`: `/CHILD:/PARENT/ALIAS`, as dockerd shows them.
    pub(crate) fn inspect_links(&self, c: &Container) -> Option<Vec<String>> {
        let links: Vec<String> = self
            .children(c)
            .into_iter()
            .map(|(name, child)| format!("/{}:{name}", child.name))
            .collect();
        (!links.is_empty()).then_some(links)
    }

    /// The link names (`/PARENT/ALIAS`) other containers know each container by (`docker ps`
    /// lists them), by its id, in one look at the records.
    pub(crate) fn link_names_by_child(&self) -> std::collections::HashMap<String, Vec<String>> {
        let mut by_child: std::collections::HashMap<String, Vec<String>> = Default::default();
        for (child, name) in self
            .containers
            .scan(|p| {
                let names: Vec<(String, String)> = p
                    .networks
                    .legacy_links
                    .iter()
                    .map(|l| (l.child.clone(), format!("/{}/{}", p.name, l.alias)))
                    .collect();
                (!names.is_empty()).then_some(names)
            })
            .into_iter()
            .flatten()
        {
            by_child.entry(child).or_default().push(name);
        }
        by_child
    }

    /// At start, before anything is made: the links' containers must be on the default
    /// bridge and running; returns the links' variables.
    pub(crate) fn check_links(&self, c: &Container) -> Result<Vec<String>> {
        if !legacy_mode(&c.host_config) {
            return Ok(Vec::new());
        }
        let mut env = Vec::new();
        let on_bridge = mode(&c.host_config) == Mode::Networks(DEFAULT_BRIDGE.into());
        for (name, child) in self.children(c) {
            if !child
                .networks
                .endpoints
                .iter()
                .any(|e| e.name == DEFAULT_BRIDGE)
            {
                return Err(EngineError::InvalidParameter(format!(
                    "Cannot link to /{}, as it does not belong to the default network",
                    child.name
                )));
            }
            if !child.is_running() {
                return Err(EngineError::Internal(format!(
                    "Cannot link to a non running container: /{} AS {name}",
                    child.name
                )));
            }
            if !on_bridge {
                continue;
            }
            let Some(ep) = bridge_endpoint(&child) else {
                continue;
            };
            let exposed: Vec<String> = child
                .config
                .exposed_ports
                .iter()
                .flatten()
                .cloned()
                .collect();
            env.extend(link_env(
                &name,
                &ep.ip.to_string(),
                &exposed,
                child.config.env.as_deref().unwrap_or(&[]),
            ));
        }
        Ok(env)
    }

    /// The `hosts` entries of `c`'s links: `IP\tALIAS HOSTNAME [NAME]` for each address of the
    /// linked container on the default bridge.
    pub(super) fn link_hosts(&self, c: &Container) -> Vec<String> {
        if mode(&c.host_config) != Mode::Networks(DEFAULT_BRIDGE.into()) {
            return Vec::new();
        }
        let mut out = Vec::new();
        for (name, child) in self.children(c) {
            let Some(ep) = bridge_endpoint(&child).filter(|_| child.is_running()) else {
                continue;
            };
            let alias = name.rsplit('/').next().unwrap_or_default();
            let mut names = vec![alias.to_string()];
            if let Some(h) = child.config.hostname.as_deref().filter(|h| !h.is_empty()) {
                names.push(h.to_string());
            }
            if alias != child.name {
                names.push(child.name.clone());
            }
            let names = names.join(" ");
            out.push(format!("{}\t{names}", ep.ip));
            if let Some(ip6) = ep.ip6 {
                out.push(format!("{ip6}\t{names}"));
            }
        }
        out
    }

    /// After `child` started (with a new address): the `hosts` of its running parents on the
    /// default bridge are written again.
    pub(super) fn update_parents_hosts(&self, child: &str) {
        let parents = self.containers.scan(|p| {
            (p.is_running() && p.networks.legacy_links.iter().any(|l| l.child == child))
                .then(|| p.clone())
        });
        for p in parents {
            let Ok(sandbox) = self.sandbox_files(&p) else {
                continue;
            };
            let own = p
                .networks
                .endpoints
                .first()
                .and_then(|e| e.live.as_ref().map(|l| (e, l)))
                .map(|(e, l)| etc::Own {
                    ip: l.endpoint.ip,
                    ip6: l.endpoint.ip6,
                    aliases: e.aliases.clone(),
                });
            if let Err(e) = self.write_etc(&p, &sandbox, own.as_ref()) {
                tracing::warn!(container = %p.id, error = %e, "updating the hosts of a link's parent");
            }
        }
    }

    /// `DELETE /containers/{name}?link=1` (`docker rm --link /PARENT/ALIAS`): removes the link
    /// named `name` from its parent, with dockerd's errors.
    pub fn remove_link(&self, name: &str) -> Result<()> {
        let full = if name.starts_with('/') {
            name.to_string()
        } else {
            format!("/{name}")
        };
        let no_such = || EngineError::NotFound(format!("No such container: {name}"));
        let (parent, alias) = full.rsplit_once('/').unwrap_or(("", &full));
        if parent.is_empty() {
            // A container's own name.
            self.containers.get(name)?;
            return Err(EngineError::Internal(
                "Conflict, cannot remove the default link name of the container".into(),
            ));
        }
        let p = self
            .containers
            .get(parent.trim_start_matches('/'))
            .ok()
            .filter(|_| !parent.trim_start_matches('/').contains('/'))
            .ok_or_else(no_such)?;
        let linked = self
            .children(&p)
            .into_iter()
            .any(|(n, _)| n.rsplit('/').next() == Some(alias));
        if !linked {
            return Err(no_such());
        }
        let alias = alias.to_string();
        self.containers.update(&p.id, move |p| {
            p.networks.legacy_links.retain(|l| l.alias != alias);
        })?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_parse_as_dockers() {
        assert_eq!(parse_link("db").unwrap(), ("db".into(), "db".into()));
        assert_eq!(parse_link("db:x").unwrap(), ("db".into(), "x".into()));
        assert_eq!(parse_link("/db:/web/x").unwrap(), ("db".into(), "x".into()));
        assert!(parse_link("a:b:c").is_err());
        assert!(parse_link("").is_err());
    }

    #[test]
    fn env_is_dockers() {
        let env = link_env(
            "/web/db-1",
            "10.0.0.2",
            &["80/tcp".into(), "81/tcp".into(), "53/udp".into()],
            &["PATH=/bin".into(), "X=1".into()],
        );
        assert_eq!(
            env,
            vec![
                "DB_1_PORT=tcp://10.0.0.2:80",
                "DB_1_PORT_80_TCP=tcp://10.0.0.2:80",
                "DB_1_PORT_80_TCP_ADDR=10.0.0.2",
                "DB_1_PORT_80_TCP_PORT=80",
                "DB_1_PORT_80_TCP_PROTO=tcp",
                "DB_1_PORT_81_TCP=tcp://10.0.0.2:81",
                "DB_1_PORT_81_TCP_ADDR=10.0.0.2",
                "DB_1_PORT_81_TCP_PORT=81",
                "DB_1_PORT_81_TCP_PROTO=tcp",
                // A range is told when the next port is not in it (as dockerd's loop).
                "DB_1_PORT_53_UDP=udp://10.0.0.2:53",
                "DB_1_PORT_53_UDP_ADDR=10.0.0.2",
                "DB_1_PORT_53_UDP_PORT=53",
                "DB_1_PORT_53_UDP_PROTO=udp",
                "DB_1_PORT_80_TCP_START=tcp://10.0.0.2:80",
                "DB_1_PORT_80_TCP_PORT_START=80",
                "DB_1_PORT_80_TCP_END=tcp://10.0.0.2:81",
                "DB_1_PORT_80_TCP_PORT_END=81",
                "DB_1_NAME=/web/db-1",
                "DB_1_ENV_X=1",
            ]
        );
    }
}
