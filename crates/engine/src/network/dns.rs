//! The embedded DNS server of containers on user-defined networks: what it knows (the
//! [`Names`] resolver over the container store) and when it runs (from the start of a
//! container on such a network, or its connection to one, to its exit; again for the
//! running ones when berthd starts).
//!
//! A container asking resolves the names of the running containers that share a user-defined
//! network with it: their names, network aliases and ids (12 characters or more), and
//! `NAME.NETWORK` within that network only; `A` gives their IPv4 addresses, `AAAA` their IPv6
//! ones on networks with IPv6. The aliases of its own `--link NAME:ALIAS` on a network are
//! NAME's on that network, for it alone. Containers on the default bridge get no server
//! and resolve nothing by name, as with Docker. Everything else goes to the container's
//! `--dns` servers, else the host's resolvers, else Google's, as dockerd does.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use berth_network::dns::{DnsServer, Resolver};

use super::*;
use crate::container::store::Store;

/// The runtime the DNS servers run on: a thread of their own, so that name lookups never wait
/// behind the API's work on berthd's workers (a burst of creates, mounts, fsyncs).
fn dns_runtime() -> Result<&'static tokio::runtime::Runtime> {
    // Built once (never two built and one dropped: dropping a runtime inside another panics).
    static RUNTIME: std::sync::OnceLock<std::io::Result<tokio::runtime::Runtime>> =
        std::sync::OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .thread_name("berth-dns")
                .enable_all()
                .build()
        })
        .as_ref()
        .map_err(|e| EngineError::Internal(format!("starting the DNS servers' runtime: {e}")))
}

/// The resolver of every server: reads the container store at each query.
struct Names {
    containers: Store,
}

impl Names {
    /// The user-defined networks container `id` is attached to: (id, lowercased name).
    fn networks_of(&self, id: &str) -> Vec<(String, String)> {
        let Ok(c) = self.containers.get(id) else {
            return Vec::new();
        };
        c.networks
            .endpoints
            .iter()
            .filter(|e| e.live.is_some() && e.name != DEFAULT_BRIDGE)
            .map(|e| (e.network_id.clone(), e.name.to_ascii_lowercase()))
            .collect()
    }
}

/// Whether `c`'s endpoint `e` answers to `name`.
fn answers_to(c: &Container, e: &EndpointEntry, name: &str) -> bool {
    c.name.eq_ignore_ascii_case(name)
        || e.aliases.iter().any(|a| a.eq_ignore_ascii_case(name))
        || (name.len() >= 12 && c.id.starts_with(name))
}

impl Names {
    /// The live endpoints of the running containers answering to `name` for `asker`.
    fn endpoints_for(&self, asker: &str, name: &str) -> Option<Vec<berth_network::Endpoint>> {
        let networks = self.networks_of(asker);
        if networks.is_empty() {
            return None;
        }
        // `NAME` in any shared network, or `NAME.NETWORK` in that one.
        let mut wanted: Vec<(String, Option<&str>)> = vec![(name.to_string(), None)];
        for (id, network) in &networks {
            if let Some(short) = name
                .strip_suffix(network.as_str())
                .and_then(|n| n.strip_suffix('.'))
            {
                wanted.push((short.to_string(), Some(id)));
            }
        }
        // The asker's links: their alias is the linked container on that network.
        if let Ok(me) = self.containers.get(asker) {
            for e in me.networks.endpoints.iter().filter(|e| e.live.is_some()) {
                for link in &e.links {
                    let (target, alias) = link.split_once(':').unwrap_or((link, link));
                    if alias.eq_ignore_ascii_case(name) {
                        let id = networks.iter().find(|(id, _)| *id == e.network_id);
                        if let Some((id, _)) = id {
                            wanted.push((target.trim_start_matches('/').to_string(), Some(id)));
                        }
                    }
                }
            }
        }
        let found: Vec<berth_network::Endpoint> = self
            .containers
            .scan(|c| {
                if !c.is_running() {
                    return None;
                }
                let eps: Vec<berth_network::Endpoint> = c
                    .networks
                    .endpoints
                    .iter()
                    .filter(|e| networks.iter().any(|(id, _)| *id == e.network_id))
                    .filter(|e| {
                        wanted.iter().any(|(n, only)| {
                            only.is_none_or(|id| id == e.network_id) && answers_to(c, e, n)
                        })
                    })
                    .filter_map(|e| e.live.as_ref().map(|l| l.endpoint.clone()))
                    .collect();
                (!eps.is_empty()).then_some(eps)
            })
            .into_iter()
            .flatten()
            .collect();
        (!found.is_empty()).then_some(found)
    }

    /// The name of the running container with address `ip` on a network shared with
    /// `asker`, as `NAME.NETWORK`.
    fn name_of(&self, asker: &str, ip: IpAddr) -> Option<String> {
        let networks = self.networks_of(asker);
        self.containers
            .scan(|c| {
                let e = c.networks.endpoints.iter().find(|e| {
                    networks.iter().any(|(id, _)| *id == e.network_id)
                        && e.live.as_ref().is_some_and(|l| {
                            IpAddr::V4(l.endpoint.ip) == ip
                                || l.endpoint.ip6.map(IpAddr::V6) == Some(ip)
                        })
                })?;
                c.is_running().then(|| format!("{}.{}", c.name, e.name))
            })
            .into_iter()
            .next()
    }
}

impl Resolver for Names {
    fn lookup(&self, asker: &str, name: &str) -> Option<Vec<Ipv4Addr>> {
        self.endpoints_for(asker, name)
            .map(|eps| eps.into_iter().map(|e| e.ip).collect())
    }

    fn lookup6(&self, asker: &str, name: &str) -> Option<Vec<Ipv6Addr>> {
        self.endpoints_for(asker, name)
            .map(|eps| eps.into_iter().filter_map(|e| e.ip6).collect())
    }

    fn reverse6(&self, asker: &str, ip: Ipv6Addr) -> Option<String> {
        self.name_of(asker, IpAddr::V6(ip))
    }

    fn reverse(&self, asker: &str, ip: Ipv4Addr) -> Option<String> {
        self.name_of(asker, IpAddr::V4(ip))
    }

    fn upstreams(&self, asker: &str) -> Vec<SocketAddr> {
        let dns = self
            .containers
            .get(asker)
            .ok()
            .and_then(|c| c.host_config.dns)
            .unwrap_or_default();
        upstreams(
            &dns,
            &std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default(),
        )
    }
}

/// Where a container's other queries go: its `--dns` servers, else the `nameserver`s of the
/// host's `resolv.conf` (loopback ones too: they are reached from the host's namespace),
/// else Google's public resolvers.
fn upstreams(dns: &[String], host_resolv_conf: &str) -> Vec<SocketAddr> {
    let parse = |s: &str| s.parse::<IpAddr>().ok().map(|ip| SocketAddr::new(ip, 53));
    let mut out: Vec<SocketAddr> = dns.iter().filter_map(|d| parse(d)).collect();
    if out.is_empty() {
        out = host_resolv_conf
            .lines()
            .filter_map(|l| l.trim().strip_prefix("nameserver"))
            .filter_map(|rest| parse(rest.trim()))
            .collect();
    }
    if out.is_empty() {
        out = ["8.8.8.8", "8.8.4.4"]
            .into_iter()
            .filter_map(parse)
            .collect();
    }
    out
}

/// Whether `c` is served by the embedded DNS: it has a namespace of its own and is on a
/// user-defined network. The CRI's pods never are: their resolvers are the pod's `dns_config`
/// (else the CNI result's, else the host's), as containerd writes them.
pub(super) fn uses_embedded_dns(c: &Container) -> bool {
    !c.is_cri()
        && matches!(mode(&c.host_config), Mode::Networks(_))
        && c.networks
            .endpoints
            .iter()
            .any(|e| e.name != DEFAULT_BRIDGE)
}

/// The running servers, by container id.
#[derive(Default)]
pub(super) struct Servers(Mutex<HashMap<String, DnsServer>>);

impl std::fmt::Debug for Servers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.0.lock().unwrap_or_else(PoisonError::into_inner).len();
        write!(f, "Servers({n})")
    }
}

impl Engine {
    /// Starts the DNS server of container `id` in the namespace at `netns`, unless it runs.
    pub(super) fn start_dns(&self, net: &NetState, id: &str, netns: &Path) -> Result<()> {
        let mut servers = net.dns.0.lock().unwrap_or_else(PoisonError::into_inner);
        if servers.contains_key(id) {
            return Ok(());
        }
        let names = Arc::new(Names {
            containers: self.containers.clone(),
        });
        let server = {
            let _runtime = dns_runtime()?.enter();
            DnsServer::start(netns, id.to_string(), names)
        }
        .map_err(|e| EngineError::Internal(format!("starting the embedded DNS server: {e}")))?;
        servers.insert(id.to_string(), server);
        Ok(())
    }

    /// Stops the DNS server of container `id`, if it has one; returns once its sockets are
    /// closed (they would keep the namespace alive).
    pub(super) async fn stop_dns(&self, net: &NetState, id: &str) {
        let server = net
            .dns
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(id);
        if let Some(server) = server {
            server.shutdown().await;
        }
    }

    /// After berthd starts: the servers of the running containers on user networks.
    pub(super) fn restart_dns_servers(&self, net: &NetState) {
        for c in self.containers.all() {
            if c.is_running() && uses_embedded_dns(&c) {
                if let Err(e) = self.start_dns(net, &c.id, &self.netns_path(&c.id)) {
                    tracing::warn!(container = %c.id, error = %e, "embedded DNS");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstreams_are_the_containers_then_the_hosts_then_googles() {
        let host = "search example\nnameserver 127.0.0.53\nnameserver ::1\noptions edns0\n";
        let dns = vec!["10.1.1.1".to_string(), "bogus".to_string()];
        assert_eq!(upstreams(&dns, host), ["10.1.1.1:53".parse().unwrap()]);
        assert_eq!(
            upstreams(&[], host),
            [
                "127.0.0.53:53".parse::<SocketAddr>().unwrap(),
                "[::1]:53".parse().unwrap()
            ]
        );
        assert_eq!(
            upstreams(&[], "search x\n"),
            [
                "8.8.8.8:53".parse::<SocketAddr>().unwrap(),
                "8.8.4.4:53".parse().unwrap()
            ]
        );
    }
}
