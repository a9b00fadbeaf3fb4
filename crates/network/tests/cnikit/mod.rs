//! Fixtures for the CNI tests: conflists with Debian's `bridge` + `host-local` (and extra
//! plugins), what host-local holds and what a bridge enslaves, the `iptables` rules `portmap`
//! made for a container, and [`DelGuard`], which runs the plugins' DEL for every attachment
//! still recorded when a test ends (also when it fails), so that `portmap`'s rules go.
#![allow(dead_code)] // not every test uses every helper

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use berth_network::cni::cache::Cache;
use berth_network::cni::{Cni, ConfList};
use berth_network::{Network, NetworkError, NetworkSpec, DRIVER_CNI, OPT_CNI_CONFLIST};

use crate::common::{root_or_skip, Env};

/// Whether root and the `plugins` are there; prints `skipped` when not.
pub fn plugins_or_skip(test: &str, plugins: &[&str]) -> bool {
    if !root_or_skip(test) {
        return false;
    }
    let found = plugins
        .iter()
        .all(|p| Path::new("/usr/lib/cni").join(p).exists());
    if !found {
        println!("skipped {test}: needs containernetworking-plugins in /usr/lib/cni");
    }
    found
}

/// A conflist file in the test's directory: a `bridge` plugin on `bridge` (gateway, no
/// masquerade) with `host-local` handing out `first`..`last` of `subnet`, then `extra`
/// plugins. The list's name is `<prefix>-<file>`.
pub fn conflist(
    env: &Env,
    file: &str,
    bridge: &str,
    subnet: &str,
    range: (u8, u8),
    extra: &str,
) -> PathBuf {
    let net: ipnet::Ipv4Net = subnet.parse().unwrap();
    let [a, b, c, _] = net.network().octets();
    let text = format!(
        r#"{{"cniVersion": "1.0.0", "name": "{name}-{file}", "plugins": [
            {{"type": "bridge", "bridge": "{bridge}", "isGateway": true, "ipMasq": false,
              "ipam": {{"type": "host-local", "dataDir": "{data}",
                        "ranges": [[{{"subnet": "{subnet}", "rangeStart": "{a}.{b}.{c}.{first}",
                                      "rangeEnd": "{a}.{b}.{c}.{last}"}}]],
                        "routes": [{{"dst": "0.0.0.0/0"}}]}}}}{extra}]}}"#,
        name = env.prefix,
        data = env.dir.path().join("host-local").display(),
        first = range.0,
        last = range.1,
    );
    let path = env.dir.path().join(format!("{file}.conflist"));
    std::fs::write(&path, text).unwrap();
    path
}

/// The addresses host-local holds for the conflist `file`.
pub fn reserved(env: &Env, file: &str) -> Vec<Ipv4Addr> {
    let dir = env
        .dir
        .path()
        .join("host-local")
        .join(format!("{}-{file}", env.prefix));
    let mut ips: Vec<Ipv4Addr> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    ips.sort();
    ips
}

/// The interfaces enslaved to `bridge`.
pub fn ports_of(bridge: &str) -> Vec<String> {
    std::fs::read_dir(format!("/sys/class/net/{bridge}/brif"))
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .collect()
}

/// Creates the CNI network `name` of `conflist`.
pub async fn create(env: &Env, name: &str, conflist: &Path) -> Result<Network, NetworkError> {
    env.nets
        .create(NetworkSpec {
            name: name.to_string(),
            driver: DRIVER_CNI.to_string(),
            options: [(OPT_CNI_CONFLIST.to_string(), conflist.display().to_string())].into(),
            ..NetworkSpec::default()
        })
        .await
}

/// The network records on disk.
pub fn persisted(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir.join("state/networks"))
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect()
}

/// On drop, runs the CNI DEL of every attachment still recorded for the network `id` (its
/// plugins' rules and addresses go), on a thread with a runtime of its own. Declared after the
/// [`Env`], so that it runs before the `Env`'s cleanup.
pub struct DelGuard {
    pub state_dir: PathBuf,
    pub network: Network,
}

impl DelGuard {
    pub fn new(env: &Env, network: &Network) -> DelGuard {
        DelGuard {
            state_dir: env.dir.path().join("state"),
            network: network.clone(),
        }
    }
}

impl Drop for DelGuard {
    fn drop(&mut self) {
        let cache = Cache::new(&self.state_dir.join("cni"));
        let records = cache.list(&self.network.id).unwrap_or_default();
        let Some(spec) = self.network.cni.clone() else {
            return;
        };
        if records.is_empty() {
            return;
        }
        let ran = std::thread::spawn(move || {
            let conf = ConfList::parse(&spec.conflist).unwrap();
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            let cni = Cni::new();
            for record in records {
                let inv = record.invocation();
                let del = cni.del(&conf, &inv, record.result.as_ref());
                if let Err(e) = runtime.block_on(del) {
                    eprintln!("cleanup: DEL of {}: {e}", record.container_id);
                }
            }
        })
        .join();
        if ran.is_err() {
            eprintln!("cleanup of the cni network {} failed", self.network.name);
        }
    }
}

pub use berth_tests::net::{free_port, host_address, portmap_rules};
