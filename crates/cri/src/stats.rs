//! `ContainerStats`, `ListContainerStats`, `PodSandboxStats` and `ListPodSandboxStats`: the
//! cgroup figures the engine reads for `docker stats`, in the CRI's terms (kubelet's summary
//! API and its eviction manager read them). CPU use per second (`usage_nano_cores`) needs
//! two readings: the last one of each container is kept, as containerd keeps it. A pod's
//! figures are the sums of its sandbox's and its containers'; its network those of the pod's
//! namespace.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use berth_engine::container::Container;
use berth_engine::files::stats::Sample;
use k8s_cri::v1 as cri;
use tonic::Status;

use crate::record::{selected, to_map, ContainerRecord, SandboxRecord};
use crate::{status, Cri};

/// The last CPU reading of each container: (when, in ns since the epoch; total CPU ns).
#[derive(Debug, Default)]
pub struct CpuReadings(Mutex<HashMap<String, (i64, u64)>>);

impl CpuReadings {
    /// CPU nanoseconds per second since the last reading of `id`, then remembers this one.
    fn nano_cores(&self, id: &str, now: i64, total: u64) -> Option<u64> {
        let mut last = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let before = last.insert(id.to_string(), (now, total));
        let (then, used) = before?;
        let elapsed = u64::try_from(now.checked_sub(then)?)
            .ok()
            .filter(|e| *e > 0)?;
        let delta = total.checked_sub(used)?;
        Some((u128::from(delta) * 1_000_000_000 / u128::from(elapsed)) as u64)
    }

    /// Forgets containers that are gone.
    fn keep(&self, ids: &[&str]) {
        let mut last = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        last.retain(|id, _| ids.contains(&id.as_str()));
    }
}

fn now_nanos() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

fn value(v: u64) -> Option<cri::UInt64Value> {
    Some(cri::UInt64Value { value: v })
}

/// A cgroup v1 figure of `memory.stat` (the hierarchical total, else the cgroup's own).
fn memory_stat(s: &berth_cgroups::Stats, key: &str) -> u64 {
    let raw = &s.memory.raw;
    raw.get(&format!("total_{key}"))
        .or_else(|| raw.get(key))
        .copied()
        .unwrap_or(0)
}

/// CPU and memory of one reading.
fn usage(
    readings: &CpuReadings,
    id: &str,
    stats: Option<&berth_cgroups::Stats>,
    now: i64,
) -> (cri::CpuUsage, cri::MemoryUsage) {
    let Some(s) = stats else {
        return (
            cri::CpuUsage {
                timestamp: now,
                ..Default::default()
            },
            cri::MemoryUsage {
                timestamp: now,
                ..Default::default()
            },
        );
    };
    let total = s.cpu.usage.total;
    let cpu = cri::CpuUsage {
        timestamp: now,
        usage_core_nano_seconds: value(total),
        usage_nano_cores: readings.nano_cores(id, now, total).and_then(value),
    };
    // kubelet's working set: usage less the inactive page cache.
    let usage = s.memory.usage.usage;
    let inactive = memory_stat(s, "inactive_file");
    let working = usage.saturating_sub(inactive);
    let limit = s.memory.usage.limit;
    let memory = cri::MemoryUsage {
        timestamp: now,
        working_set_bytes: value(working),
        available_bytes: (limit < (1 << 62))
            .then(|| limit.saturating_sub(working))
            .and_then(value),
        usage_bytes: value(usage),
        rss_bytes: value(memory_stat(s, "rss")),
        page_faults: value(memory_stat(s, "pgfault")),
        major_page_faults: value(memory_stat(s, "pgmajfault")),
    };
    (cpu, memory)
}

/// Sums of pods' figures.
fn add(a: &Option<cri::UInt64Value>, b: &Option<cri::UInt64Value>) -> Option<cri::UInt64Value> {
    match (a, b) {
        (None, None) => None,
        _ => value(a.as_ref().map_or(0, |v| v.value) + b.as_ref().map_or(0, |v| v.value)),
    }
}

impl Cri {
    fn sample(&self, c: &Container) -> Result<Sample, Status> {
        self.engine
            .stats_sample(&c.id)
            .map(|(_, s)| s)
            .map_err(status)
    }

    fn container_stats_of(
        &self,
        c: &Container,
        r: &ContainerRecord,
    ) -> Result<cri::ContainerStats, Status> {
        let sample = self.sample(c)?;
        Ok(self.container_stats_from(c, r, &sample))
    }

    /// A container's stats from one reading of its figures.
    fn container_stats_from(
        &self,
        c: &Container,
        r: &ContainerRecord,
        sample: &Sample,
    ) -> cri::ContainerStats {
        let now = now_nanos();
        let (cpu, memory) = usage(&self.cpu_readings, &c.id, sample.cgroup(), now);
        let writable_layer =
            self.engine
                .writable_layer(&c.id)
                .map(|(dir, bytes)| cri::FilesystemUsage {
                    timestamp: now,
                    fs_id: Some(cri::FilesystemIdentifier {
                        mountpoint: dir.display().to_string(),
                    }),
                    used_bytes: value(bytes),
                    inodes_used: None,
                });
        cri::ContainerStats {
            attributes: Some(cri::ContainerAttributes {
                id: c.id.clone(),
                metadata: Some(cri::ContainerMetadata {
                    name: r.name.clone(),
                    attempt: r.attempt,
                }),
                labels: to_map(&r.labels),
                annotations: to_map(&r.annotations),
            }),
            cpu: Some(cpu),
            memory: Some(memory),
            writable_layer,
            swap: None,
        }
    }

    pub(crate) fn container_stats(&self, id: &str) -> Result<cri::ContainerStats, Status> {
        let (c, r) = self.container(id)?;
        self.container_stats_of(&c, &r)
    }

    pub(crate) fn list_container_stats(
        &self,
        filter: Option<cri::ContainerStatsFilter>,
    ) -> Result<Vec<cri::ContainerStats>, Status> {
        let filter = filter.unwrap_or_default();
        let all = self.containers();
        let ids: Vec<&str> = all.iter().map(|(c, _)| c.id.as_str()).collect();
        self.cpu_readings.keep(&ids);
        all.iter()
            .filter(|(c, r)| {
                c.is_running()
                    && (filter.id.is_empty() || c.id.starts_with(&filter.id))
                    && (filter.pod_sandbox_id.is_empty()
                        || r.sandbox_id.starts_with(&filter.pod_sandbox_id))
                    && selected(&r.labels, &filter.label_selector)
            })
            .map(|(c, r)| self.container_stats_of(c, r))
            .collect()
    }

    fn pod_stats_of(
        &self,
        sandbox: &Container,
        r: &SandboxRecord,
    ) -> Result<cri::PodSandboxStats, Status> {
        let sample = self.sample(sandbox)?;
        let now = now_nanos();
        let (mut cpu, mut memory) = usage(&self.cpu_readings, &sandbox.id, sample.cgroup(), now);
        let mut processes = sample.cgroup().map_or(0, |s| s.pids.current);
        let mut containers = Vec::new();
        for (c, cr) in self.pod_containers(&sandbox.id) {
            if !c.is_running() {
                continue;
            }
            let reading = self.sample(&c)?;
            processes += reading.cgroup().map_or(0, |s| s.pids.current);
            let s = self.container_stats_from(&c, &cr, &reading);
            if let Some(c) = &s.cpu {
                cpu.usage_core_nano_seconds =
                    add(&cpu.usage_core_nano_seconds, &c.usage_core_nano_seconds);
                cpu.usage_nano_cores = add(&cpu.usage_nano_cores, &c.usage_nano_cores);
            }
            if let Some(m) = &s.memory {
                memory.working_set_bytes = add(&memory.working_set_bytes, &m.working_set_bytes);
                memory.usage_bytes = add(&memory.usage_bytes, &m.usage_bytes);
                memory.rss_bytes = add(&memory.rss_bytes, &m.rss_bytes);
                memory.page_faults = add(&memory.page_faults, &m.page_faults);
                memory.major_page_faults = add(&memory.major_page_faults, &m.major_page_faults);
            }
            containers.push(s);
        }
        memory.available_bytes = None;
        let counter = |v: &serde_json::Value, k: &str| value(v[k].as_u64().unwrap_or(0));
        let interfaces: Vec<cri::NetworkInterfaceUsage> = sample
            .networks()
            .iter()
            .map(|(name, v)| cri::NetworkInterfaceUsage {
                name: name.clone(),
                rx_bytes: counter(v, "rx_bytes"),
                rx_errors: counter(v, "rx_errors"),
                tx_bytes: counter(v, "tx_bytes"),
                tx_errors: counter(v, "tx_errors"),
            })
            .collect();
        let network = (!interfaces.is_empty()).then(|| cri::NetworkUsage {
            timestamp: now,
            default_interface: interfaces.iter().find(|i| i.name == "eth0").cloned(),
            interfaces,
        });
        Ok(cri::PodSandboxStats {
            attributes: Some(cri::PodSandboxAttributes {
                id: sandbox.id.clone(),
                metadata: Some(cri::PodSandboxMetadata {
                    name: r.name.clone(),
                    uid: r.uid.clone(),
                    namespace: r.namespace.clone(),
                    attempt: r.attempt,
                }),
                labels: to_map(&r.labels),
                annotations: to_map(&r.annotations),
            }),
            linux: Some(cri::LinuxPodSandboxStats {
                cpu: Some(cpu),
                memory: Some(memory),
                network,
                process: Some(cri::ProcessUsage {
                    timestamp: now,
                    process_count: value(processes),
                }),
                containers,
            }),
            windows: None,
        })
    }

    pub(crate) fn pod_sandbox_stats(&self, id: &str) -> Result<cri::PodSandboxStats, Status> {
        let (c, r) = self.sandbox(id)?;
        self.pod_stats_of(&c, &r)
    }

    pub(crate) fn list_pod_sandbox_stats(
        &self,
        filter: Option<cri::PodSandboxStatsFilter>,
    ) -> Result<Vec<cri::PodSandboxStats>, Status> {
        let filter = filter.unwrap_or_default();
        self.sandboxes()
            .iter()
            .filter(|(c, r)| {
                c.is_running()
                    && (filter.id.is_empty() || c.id.starts_with(&filter.id))
                    && selected(&r.labels, &filter.label_selector)
            })
            .map(|(c, r)| self.pod_stats_of(c, r))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_per_second_needs_two_readings() {
        let r = CpuReadings::default();
        assert_eq!(r.nano_cores("a", 1_000_000_000, 5_000), None);
        // Half a core over one second.
        assert_eq!(
            r.nano_cores("a", 2_000_000_000, 500_005_000),
            Some(500_000_000)
        );
        // A counter that went back (a restarted container) gives nothing, not a wrap.
        assert_eq!(r.nano_cores("a", 3_000_000_000, 10), None);
        r.keep(&[]);
        assert_eq!(r.nano_cores("a", 4_000_000_000, 20), None);
    }
}
