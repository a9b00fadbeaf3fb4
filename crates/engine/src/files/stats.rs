//! `GET /containers/{id}/stats`: Docker's stats object from the container's cgroup figures
//! (through the runtime), the host's CPU time from `/proc/stat`, and the network counters of the
//! container's namespace (`/proc/<pid>/net/dev`).

use std::time::SystemTime;

use serde_json::{json, Map, Value};

use crate::container::{Container, NEVER};
use crate::error::Result;
use crate::Engine;

/// One reading of a container's figures.
#[derive(Debug, Clone)]
pub struct Sample {
    /// When it was read (RFC 3339, nanoseconds).
    pub read: String,
    /// The cgroup's figures; `None` when the container does not run.
    stats: Option<berth_cgroups::Stats>,
    /// The host's CPU time, nanoseconds.
    system_cpu_usage: u64,
    online_cpus: u64,
    networks: Map<String, Value>,
}

impl Sample {
    /// The cgroup's figures; `None` when the container does not run.
    pub fn cgroup(&self) -> Option<&berth_cgroups::Stats> {
        self.stats.as_ref()
    }

    /// The counters of the container's network interfaces, as Docker's stats show them
    /// (`{"eth0": {"rx_bytes": ..., "tx_errors": ...}}`).
    pub fn networks(&self) -> &Map<String, Value> {
        &self.networks
    }
}

impl Engine {
    /// The writable layer of container `id`: its directory and the bytes its files hold.
    pub fn writable_layer(&self, id: &str) -> Option<(std::path::PathBuf, u64)> {
        let dir = self
            .images
            .store
            .snapshots
            .upper_dir(&format!("container-{id}"))
            .ok()?;
        let size = crate::volumes::dir_size(&dir);
        Some((dir, size))
    }

    /// The container `key` and one reading of its figures.
    pub fn stats_sample(&self, key: &str) -> Result<(Container, Sample)> {
        let c = self.containers.get(key)?;
        let (system_cpu_usage, online_cpus) = host_cpu();
        let mut sample = Sample {
            read: humantime::format_rfc3339_nanos(SystemTime::now()).to_string(),
            stats: None,
            system_cpu_usage,
            online_cpus,
            networks: Map::new(),
        };
        if c.is_running() {
            let runtime = self.driver(&c)?;
            match runtime.stats(&c.id) {
                Ok(s) => sample.stats = Some(s),
                Err(e) => tracing::debug!(container = %c.id, error = %e, "stats"),
            }
            if c.host_config.network_mode.as_deref() != Some("host") {
                if let Some(pid) = runtime.pids(&c.id).ok().and_then(|p| p.first().copied()) {
                    sample.networks = networks(pid);
                }
            }
        }
        Ok((c, sample))
    }
}

/// Docker's stats object for `c` from `cur` and the reading before it (`pre`).
pub fn stats_json(c: &Container, cur: &Sample, pre: Option<&Sample>) -> Value {
    let Some(stats) = &cur.stats else {
        // As dockerd answers for a container that does not run: zeros.
        return json!({
            "read": NEVER,
            "preread": NEVER,
            "pids_stats": {},
            "blkio_stats": blkio(None),
            "num_procs": 0,
            "storage_stats": {},
            "cpu_stats": {"cpu_usage": {"total_usage": 0, "usage_in_kernelmode": 0, "usage_in_usermode": 0}, "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0}},
            "precpu_stats": {"cpu_usage": {"total_usage": 0, "usage_in_kernelmode": 0, "usage_in_usermode": 0}, "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0}},
            "memory_stats": {},
            "name": format!("/{}", c.name),
            "id": c.id,
        });
    };
    let precpu = match pre {
        Some(p) => cpu(p),
        None => {
            json!({"cpu_usage": {"total_usage": 0, "usage_in_kernelmode": 0, "usage_in_usermode": 0}, "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0}})
        }
    };
    let mut pids = json!({"current": stats.pids.current});
    if stats.pids.limit > 0 {
        pids["limit"] = json!(stats.pids.limit);
    }
    let mem = &stats.memory;
    let mut limit = mem.usage.limit;
    if let Some(total) = host_memory() {
        if limit == 0 || limit > total {
            limit = total;
        }
    }
    let mut memory = json!({
        "usage": mem.usage.usage,
        "stats": mem.raw,
        "limit": limit,
    });
    if mem.usage.max > 0 {
        memory["max_usage"] = json!(mem.usage.max);
    }
    if mem.usage.failcnt > 0 {
        memory["failcnt"] = json!(mem.usage.failcnt);
    }
    json!({
        "read": cur.read,
        "preread": pre.map(|p| p.read.as_str()).unwrap_or(NEVER),
        "pids_stats": pids,
        "blkio_stats": blkio(Some(&stats.blkio)),
        "num_procs": 0,
        "storage_stats": {},
        "cpu_stats": cpu(cur),
        "precpu_stats": precpu,
        "memory_stats": memory,
        "name": format!("/{}", c.name),
        "id": c.id,
        "networks": cur.networks,
    })
}

fn cpu(s: &Sample) -> Value {
    let Some(stats) = &s.stats else {
        return json!({"cpu_usage": {"total_usage": 0, "usage_in_kernelmode": 0, "usage_in_usermode": 0}, "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0}});
    };
    let u = &stats.cpu.usage;
    let t = &stats.cpu.throttling;
    let mut usage = json!({
        "total_usage": u.total,
        "usage_in_kernelmode": u.kernel,
        "usage_in_usermode": u.user,
    });
    if !u.percpu.is_empty() {
        usage["percpu_usage"] = json!(u.percpu);
    }
    json!({
        "cpu_usage": usage,
        "system_cpu_usage": s.system_cpu_usage,
        "online_cpus": s.online_cpus,
        "throttling_data": {
            "periods": t.periods,
            "throttled_periods": t.throttled_periods,
            "throttled_time": t.throttled_time,
        },
    })
}

fn blkio(b: Option<&berth_cgroups::Blkio>) -> Value {
    let entries = |v: &[berth_cgroups::BlkioEntry]| -> Value {
        v.iter()
            .map(|e| json!({"major": e.major, "minor": e.minor, "op": e.op, "value": e.value}))
            .collect()
    };
    let (bytes, ios) = match b {
        Some(b) => (
            entries(&b.io_service_bytes_recursive),
            entries(&b.io_serviced_recursive),
        ),
        None => (json!([]), json!([])),
    };
    json!({
        "io_service_bytes_recursive": bytes,
        "io_serviced_recursive": ios,
        "io_queue_recursive": [],
        "io_service_time_recursive": [],
        "io_wait_time_recursive": [],
        "io_merged_recursive": [],
        "io_time_recursive": [],
        "sectors_recursive": [],
    })
}

/// The host's total CPU time in nanoseconds and the number of CPUs, from `/proc/stat`.
fn host_cpu() -> (u64, u64) {
    let text = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    parse_proc_stat(&text, clock_ticks())
}

fn parse_proc_stat(text: &str, ticks: u64) -> (u64, u64) {
    let mut total = 0;
    let mut cpus = 0;
    for line in text.lines() {
        let mut it = line.split_whitespace();
        match it.next() {
            Some("cpu") => {
                // user nice system idle iowait irq softirq steal (guest time is in user).
                let sum: u64 = it.take(8).filter_map(|v| v.parse::<u64>().ok()).sum();
                total = sum.saturating_mul(1_000_000_000 / ticks.max(1));
            }
            Some(c) if c.starts_with("cpu") => cpus += 1,
            _ => {}
        }
    }
    (total, cpus)
}

fn clock_ticks() -> u64 {
    // SAFETY: sysconf only reads a configuration value; it has no memory effects.
    let n = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if n > 0 {
        n as u64
    } else {
        100
    }
}

/// `MemTotal` in bytes.
fn host_memory() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// The interfaces of the network namespace of `pid` (loopback left out), as Docker names the
/// counters.
fn networks(pid: i32) -> Map<String, Value> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/net/dev")).unwrap_or_default();
    parse_net_dev(&text)
}

fn parse_net_dev(text: &str) -> Map<String, Value> {
    let mut out = Map::new();
    for line in text.lines().skip(2) {
        let Some((name, rest)) = line.split_once(':') else {
            continue;
        };
        let name = name.trim();
        if name == "lo" {
            continue;
        }
        let v: Vec<u64> = rest
            .split_whitespace()
            .filter_map(|x| x.parse().ok())
            .collect();
        if v.len() < 12 {
            continue;
        }
        out.insert(
            name.to_string(),
            json!({
                "rx_bytes": v[0], "rx_packets": v[1], "rx_errors": v[2], "rx_dropped": v[3],
                "tx_bytes": v[8], "tx_packets": v[9], "tx_errors": v[10], "tx_dropped": v[11],
            }),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_stat_and_net_dev_parse() {
        let stat = "cpu  10 0 10 80 0 0 0 0 0 0\ncpu0 5 0 5 40 0 0 0 0 0 0\ncpu1 5 0 5 40 0 0 0 0 0 0\nintr 1\n";
        assert_eq!(parse_proc_stat(stat, 100), (100 * 10_000_000, 2));
        let dev = "Inter-|   Receive\n face |bytes\n    lo: 1 2 0 0 0 0 0 0 1 2 0 0 0 0 0 0\n  eth0: 656 8 0 0 0 0 0 0 10 1 0 0 0 0 0 0\n";
        let n = parse_net_dev(dev);
        assert_eq!(n.len(), 1);
        assert_eq!(n["eth0"]["rx_bytes"], 656);
        assert_eq!(n["eth0"]["tx_packets"], 1);
    }
}
