//! `linux.resources` of a container's OCI config: its cgroup limits from the HostConfig (also
//! what `docker update` writes to a running container).

use crate::container::spec::HostSpec;
use oci_spec::runtime::{LinuxBlockIo, LinuxCpu, LinuxMemory, LinuxPids, LinuxResources};

/// `linux.resources` from the HostConfig's limits.
pub(crate) fn resources(hc: &HostSpec) -> LinuxResources {
    let mut memory = LinuxMemory::default();
    let mut memory_set = false;
    let limit = hc.memory.unwrap_or(0);
    if limit > 0 {
        let swap = match hc.memory_swap.unwrap_or(0) {
            0 => limit.saturating_mul(2),
            s => s,
        };
        memory.set_limit(Some(limit)).set_swap(Some(swap));
        memory_set = true;
    }
    if let Some(res) = hc.memory_reservation.filter(|m| *m > 0) {
        memory.set_reservation(Some(res));
        memory_set = true;
    }
    if let Some(s) = hc.memory_swappiness.filter(|s| *s >= 0) {
        memory.set_swappiness(Some(s as u64));
        memory_set = true;
    }
    if hc.oom_kill_disable == Some(true) {
        memory.set_disable_oom_killer(Some(true));
        memory_set = true;
    }
    let mut cpu = LinuxCpu::default();
    let mut cpu_set = false;
    if let Some(n) = hc.nano_cpus.filter(|n| *n > 0) {
        // n * 100000 / 1e9, without overflowing for the largest n.
        cpu.set_period(Some(100_000)).set_quota(Some(n / 10_000));
        cpu_set = true;
    }
    if let Some(s) = hc.cpu_shares.filter(|s| *s > 0) {
        cpu.set_shares(Some(s as u64));
        cpu_set = true;
    }
    if let Some(q) = hc.cpu_quota.filter(|q| *q > 0) {
        cpu.set_quota(Some(q));
        cpu_set = true;
    }
    if let Some(p) = hc.cpu_period.filter(|p| *p > 0) {
        cpu.set_period(Some(p as u64));
        cpu_set = true;
    }
    if let Some(c) = hc.cpuset_cpus.clone().filter(|c| !c.is_empty()) {
        cpu.set_cpus(Some(c));
        cpu_set = true;
    }
    if let Some(m) = hc.cpuset_mems.clone().filter(|m| !m.is_empty()) {
        cpu.set_mems(Some(m));
        cpu_set = true;
    }
    let pids = hc.pids_limit.filter(|p| *p > 0).map(|p| {
        let mut pids = LinuxPids::default();
        pids.set_limit(p);
        pids
    });
    let block_io = hc.blkio_weight.filter(|w| *w > 0).map(|w| {
        let mut io = LinuxBlockIo::default();
        io.set_weight(Some(w));
        io
    });
    let mut r = LinuxResources::default();
    r.set_devices(None)
        .set_memory(memory_set.then_some(memory))
        .set_cpu(cpu_set.then_some(cpu))
        .set_pids(pids)
        .set_block_io(block_io)
        .set_hugepage_limits(None)
        .set_network(None)
        .set_rdma(None)
        .set_unified(None);
    r
}
