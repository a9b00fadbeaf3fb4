//! The `cni` driver's part of a container's `/etc` files: when the result of the container's
//! first network (a CNI one) gives nameservers, they make `resolv.conf` (with the result's
//! search list and options) instead of the host's resolvers; `--dns`, `--dns-search` and
//! `--dns-option` still win. Without DNS in the result, the files are as for a bridge.

use super::*;

impl Engine {
    /// Rewrites `resolv.conf` in `etc_dir` from the DNS settings of the container's first
    /// endpoint, if a CNI plugin gave some (and `--dns` was not given).
    pub(super) fn cni_resolv_conf(&self, id: &str, etc_dir: &Path) -> Result<()> {
        let Ok(c) = self.containers.get(id) else {
            return Ok(());
        };
        let dns = c
            .networks
            .endpoints
            .first()
            .and_then(|e| e.live.as_ref())
            .and_then(|l| l.endpoint.dns.clone())
            .filter(|d| !d.nameservers.is_empty());
        let hc = &c.host_config;
        let given = |v: &Option<Vec<String>>| v.clone().filter(|v| !v.is_empty());
        let Some(dns) = dns.filter(|_| given(&hc.dns).is_none()) else {
            return Ok(());
        };
        let mut lines: Vec<String> = dns
            .nameservers
            .iter()
            .map(|n| format!("nameserver {n}"))
            .collect();
        let search = given(&hc.dns_search).unwrap_or_else(|| {
            let mut s = dns.search.clone();
            if s.is_empty() && !dns.domain.is_empty() {
                s.push(dns.domain.clone());
            }
            s
        });
        if !search.is_empty() {
            lines.push(format!("search {}", search.join(" ")));
        }
        let options = given(&hc.dns_options).unwrap_or(dns.options);
        if !options.is_empty() {
            lines.push(format!("options {}", options.join(" ")));
        }
        std::fs::write(etc_dir.join("resolv.conf"), lines.join("\n") + "\n")
            .map_err(|e| EngineError::internal("write /etc file", e))
    }
}
