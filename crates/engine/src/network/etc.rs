//! A container's `hostname`, `hosts` and `resolv.conf`.

use super::*;

/// A container's own entries of `hosts`: its addresses on its first network, and aliases.
pub(super) struct Own {
    pub ip: Ipv4Addr,
    pub ip6: Option<Ipv6Addr>,
    pub aliases: Vec<String>,
}

/// What else goes into `hosts`: the gateway `host-gateway` names, the legacy links' lines.
#[derive(Clone, Copy)]
pub(super) struct Extra<'a> {
    pub host_gateway: Option<Ipv4Addr>,
    pub links: &'a [String],
}

/// `hostname`, `hosts` and `resolv.conf` in `dir`, as dockerd writes them: the default
/// entries, `--add-host` (`host-gateway` is the default bridge's gateway), the legacy links'
/// entries (`links`), then the container's address with its hostname and aliases; the host's resolvers without loopback
/// ones (unreachable from the container's namespace) unless `--dns`, with `--dns-search` and
/// `--dns-option`. `--network host` gets the host's files. A container on a user-defined
/// network has the embedded DNS server as its only `nameserver`, with `ndots:0`; its other
/// servers are the ones that server forwards to.
pub(super) fn write_etc_files(
    dir: &Path,
    config: &ContainerSpec,
    hc: &HostSpec,
    hostname: &str,
    own: Option<&Own>,
    extra: &Extra<'_>,
    embedded_dns: bool,
) -> Result<()> {
    let Extra {
        host_gateway,
        links,
    } = *extra;
    let w = |name: &str, text: String| {
        std::fs::write(dir.join(name), text)
            .map_err(|e| EngineError::internal("write /etc file", e))
    };
    let host_mode = mode(hc) == Mode::Host;
    w("hostname", format!("{hostname}\n"))?;
    let mut hosts = if host_mode {
        std::fs::read_to_string("/etc/hosts").unwrap_or_default()
    } else {
        "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n".to_string()
    };
    if !hosts.is_empty() && !hosts.ends_with('\n') {
        hosts.push('\n');
    }
    for extra in hc.extra_hosts.iter().flatten() {
        let Some((name, ip)) = extra.split_once([':', '=']) else {
            continue;
        };
        let ip = if ip == "host-gateway" {
            match host_gateway {
                Some(g) => g.to_string(),
                None => continue,
            }
        } else {
            ip.trim_start_matches('[').trim_end_matches(']').to_string()
        };
        hosts.push_str(&format!("{ip}\t{name}\n"));
    }
    for link in links {
        hosts.push_str(link);
        hosts.push('\n');
    }
    if let Some(Own { ip, ip6, aliases }) = own {
        let mut names = vec![hostname.to_string()];
        if let Some(domain) = config.domainname.as_deref().filter(|d| !d.is_empty()) {
            names.insert(0, format!("{hostname}.{domain}"));
        }
        names.extend(aliases.iter().filter(|a| a.as_str() != hostname).cloned());
        hosts.push_str(&format!("{ip}\t{}\n", names.join(" ")));
        if let Some(ip6) = ip6 {
            hosts.push_str(&format!("{ip6}\t{}\n", names.join(" ")));
        }
    }
    w("hosts", hosts)?;
    let host = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let dns = hc.dns.clone().unwrap_or_default();
    let search = hc.dns_search.clone().unwrap_or_default();
    let options = hc.dns_options.clone().unwrap_or_default();
    let mut out: Vec<String> = Vec::new();
    for line in host.lines() {
        let word = line.split_whitespace().next().unwrap_or("");
        let skip = match word {
            "nameserver" => {
                !dns.is_empty() || (!host_mode && (line.contains(" 127.") || line.contains(" ::1")))
            }
            "search" | "domain" => !search.is_empty(),
            "options" => !options.is_empty(),
            _ => false,
        };
        if !skip {
            out.push(line.to_string());
        }
    }
    if embedded_dns {
        out.retain(|l| !l.starts_with("nameserver"));
        out.push(format!("nameserver {}", berth_network::dns::ADDRESS));
    } else {
        out.extend(dns.iter().map(|d| format!("nameserver {d}")));
    }
    if !out.iter().any(|l| l.starts_with("nameserver")) {
        out.push("nameserver 8.8.8.8".into());
        out.push("nameserver 8.8.4.4".into());
    }
    if !search.is_empty() {
        out.push(format!("search {}", search.join(" ")));
    }
    if !options.is_empty() {
        out.push(format!("options {}", options.join(" ")));
    }
    if embedded_dns
        && !out
            .iter()
            .any(|l| l.starts_with("options") && l.contains("ndots:"))
    {
        match out.iter_mut().find(|l| l.starts_with("options")) {
            Some(line) => line.push_str(" ndots:0"),
            None => out.push("options ndots:0".into()),
        }
    }
    w("resolv.conf", out.join("\n") + "\n")
}
