//! cgroup v2 (unified): enabling controllers down the tree, writing OCI
//! resources with runc's conversions (memory.max/low/swap.max, cpu.weight,
//! cpu.max, io.weight/io.max, hugetlb.<size>.max, the `unified` map), the
//! v2 freezer (cgroup.freeze + cgroup.events) and OOM-kill counting.
//! Device control is not here: it is an eBPF program, see
//! `device_filter.rs` and `bpf.rs`.

use std::collections::HashMap;
use std::path::Path;
use std::thread::sleep;
use std::time::{Duration, Instant};

use oci_spec::runtime::{LinuxBlockIo, LinuxCpu, LinuxHugepageLimit, LinuxMemory};

use crate::convert::{self, ConvertError};
use crate::fs::{self, FsError};
use crate::stats::parse_flat_keyed;

/// A v2 setting that could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum V2Error {
    /// A cgroup file could not be read or written.
    #[error(transparent)]
    Fs(#[from] FsError),
    /// An OCI value could not be converted.
    #[error(transparent)]
    Convert(#[from] ConvertError),
    /// `checkBeforeUpdate` was set and the new limit is below the usage.
    #[error("memory.limit {limit} is below the current usage of {usage} bytes in {}", dir.display())]
    LimitBelowUsage {
        /// The requested limit.
        limit: i64,
        /// memory.current.
        usage: u64,
        /// The cgroup directory.
        dir: std::path::PathBuf,
    },
    /// A setting that cgroup v2 has no file for.
    #[error("{0} is not supported on cgroup v2")]
    Unsupported(&'static str),
    /// cgroup.events did not show the wanted frozen state in time.
    #[error("cgroup.events in {} did not show \"frozen {want}\" within {timeout:?}", dir.display())]
    FreezeTimeout {
        /// The cgroup directory.
        dir: std::path::PathBuf,
        /// 1 or 0.
        want: u8,
        /// How long we waited.
        timeout: Duration,
    },
}

/// Creates `dir` level by level below `mount_point`, enabling in each
/// ancestor's `cgroup.subtree_control` every controller it has available
/// (as runc does). Enabling is best effort: an ancestor with processes of
/// its own refuses (EBUSY), and a controller missing at `dir` then shows up
/// as a missing file when a limit is applied.
pub fn create(mount_point: &Path, dir: &Path) -> Result<(), V2Error> {
    let rel = dir.strip_prefix(mount_point).unwrap_or(dir);
    let mut current = mount_point.to_path_buf();
    for comp in rel.components() {
        enable_all_controllers(&current)?;
        current.push(comp);
        fs::create_dir(&current)?;
    }
    Ok(())
}

/// Enables all of `dir`'s available controllers for its children.
fn enable_all_controllers(dir: &Path) -> Result<(), V2Error> {
    let available = fs::read_in(dir, "cgroup.controllers")?;
    let enabled = fs::read_in(dir, "cgroup.subtree_control")?;
    let enabled: Vec<&str> = enabled.split_whitespace().collect();
    let missing: Vec<String> = available
        .split_whitespace()
        .filter(|c| !enabled.contains(c))
        .map(|c| format!("+{c}"))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    if fs::write_in(dir, "cgroup.subtree_control", &missing.join(" ")).is_err() {
        for c in &missing {
            // Ignored on purpose, see `create`.
            let _ = fs::write_in(dir, "cgroup.subtree_control", c);
        }
    }
    Ok(())
}

/// memory.swap.max, memory.max, memory.low (runc's order and conversions).
///
/// `disableOOMKiller` has no v2 equivalent and is ignored, as by runc;
/// `memory.oom.group` can be set through the `unified` map.
pub fn set_memory(dir: &Path, mem: &LinuxMemory) -> Result<(), V2Error> {
    let limit = mem.limit().unwrap_or(0);
    let swap = mem.swap().unwrap_or(0);
    if mem.check_before_update() == Some(true) && limit > 0 {
        let usage = fs::read_u64(dir, "memory.current")?;
        if (limit as u64) < usage {
            return Err(V2Error::LimitBelowUsage {
                limit,
                usage,
                dir: dir.to_path_buf(),
            });
        }
    }
    if let Some(value) = convert::swap_to_v2(swap, limit)? {
        match fs::write_in(dir, "memory.swap.max", &value) {
            Ok(()) => {}
            // No swap accounting: "no swap" or "unlimited" are moot.
            Err(e) if e.is_not_found() && (value == "max" || value == "0") => {}
            Err(e) => return Err(e.into()),
        }
    }
    if let Some(value) = convert::limit_to_v2(limit) {
        fs::write_in(dir, "memory.max", &value)?;
    }
    if let Some(value) = mem.reservation().and_then(convert::limit_to_v2) {
        fs::write_in(dir, "memory.low", &value)?;
    }
    if let Some(s) = mem.swappiness() {
        // v2 has no per-cgroup swappiness; only the default (or unset) is fine.
        convert::swappiness(s)?;
    }
    Ok(())
}

/// cpu.weight (from shares), cpu.max, cpu.max.burst, cpu.idle.
pub fn set_cpu(dir: &Path, cpu: &LinuxCpu) -> Result<(), V2Error> {
    if cpu.realtime_runtime().is_some_and(|v| v != 0)
        || cpu.realtime_period().is_some_and(|v| v != 0)
    {
        return Err(V2Error::Unsupported(
            "cpu.realtimeRuntime / cpu.realtimePeriod",
        ));
    }
    let weight = convert::shares_to_weight(cpu.shares().unwrap_or(0));
    if weight != 0 {
        fs::write_in(dir, "cpu.weight", &weight.to_string())?;
    }
    let quota = cpu.quota().unwrap_or(0);
    let period = cpu.period().unwrap_or(0);
    if quota != 0 || period != 0 {
        let mut value = if quota > 0 {
            quota.to_string()
        } else {
            "max".to_string()
        };
        if period != 0 {
            value = format!("{value} {period}");
        }
        fs::write_in(dir, "cpu.max", &value)?;
    }
    if let Some(burst) = cpu.burst() {
        fs::write_in(dir, "cpu.max.burst", &burst.to_string())?;
    }
    if let Some(idle) = cpu.idle() {
        fs::write_in(dir, "cpu.idle", &idle.to_string())?;
    }
    Ok(())
}

/// cpuset.cpus and cpuset.mems.
pub fn set_cpuset(dir: &Path, cpu: &LinuxCpu) -> Result<(), V2Error> {
    if let Some(cpus) = cpu.cpus().as_deref().filter(|s| !s.is_empty()) {
        fs::write_in(dir, "cpuset.cpus", cpus)?;
    }
    if let Some(mems) = cpu.mems().as_deref().filter(|s| !s.is_empty()) {
        fs::write_in(dir, "cpuset.mems", mems)?;
    }
    Ok(())
}

/// io.bfq.weight (BFQ, 1..1000) or io.weight (converted), per-device
/// weights, and io.max for the throttles (rate 0 = `max`).
pub fn set_io(dir: &Path, b: &LinuxBlockIo) -> Result<(), V2Error> {
    if b.leaf_weight().is_some_and(|w| w != 0)
        || b.weight_device()
            .iter()
            .flatten()
            .any(|wd| wd.leaf_weight().is_some())
    {
        return Err(V2Error::Unsupported("blockIO.leafWeight"));
    }
    let bfq = dir.join("io.bfq.weight").exists();
    if let Some(w) = b.weight().filter(|w| *w != 0) {
        if bfq {
            fs::write_in(dir, "io.bfq.weight", &w.to_string())?;
        } else {
            let v = convert::blkio_weight_to_io_weight(w);
            fs::write_in(dir, "io.weight", &format!("default {v}"))?;
        }
    }
    for wd in b.weight_device().iter().flatten() {
        if let Some(w) = wd.weight() {
            let dev = format!("{}:{}", wd.major(), wd.minor());
            if bfq {
                fs::write_in(dir, "io.bfq.weight", &format!("{dev} {w}"))?;
            } else {
                let v = convert::blkio_weight_to_io_weight(w);
                fs::write_in(dir, "io.weight", &format!("{dev} {v}"))?;
            }
        }
    }
    let throttles = [
        (b.throttle_read_bps_device(), "rbps"),
        (b.throttle_write_bps_device(), "wbps"),
        (b.throttle_read_iops_device(), "riops"),
        (b.throttle_write_iops_device(), "wiops"),
    ];
    for (devices, key) in throttles {
        for td in devices.iter().flatten() {
            let rate = match td.rate() {
                0 => "max".to_string(),
                r => r.to_string(),
            };
            let line = format!("{}:{} {key}={rate}", td.major(), td.minor());
            fs::write_in(dir, "io.max", &line)?;
        }
    }
    Ok(())
}

/// hugetlb.<size>.max, and hugetlb.<size>.rsvd.max where it exists.
pub fn set_hugetlb(dir: &Path, limits: &[LinuxHugepageLimit]) -> Result<(), V2Error> {
    for l in limits {
        let size = convert::page_size(l.page_size())?;
        let value = match l.limit() {
            v if v < 0 => "max".to_string(),
            v => v.to_string(),
        };
        fs::write_in(dir, &format!("hugetlb.{size}.max"), &value)?;
        fs::write_if_exists(dir, &format!("hugetlb.{size}.rsvd.max"), &value)?;
    }
    Ok(())
}

/// The OCI `unified` map, each key a file in `dir`, value written verbatim.
/// Keys are written in sorted order so the result does not depend on
/// hash order.
pub fn set_unified(dir: &Path, unified: &HashMap<String, String>) -> Result<(), V2Error> {
    let mut keys: Vec<&String> = unified.keys().collect();
    keys.sort();
    for key in keys {
        let file = convert::unified_key(key)?;
        fs::write_in(dir, file, &unified[key])?;
    }
    Ok(())
}

/// cgroup.freeze to 1 or 0, then waits (bounded) for cgroup.events to
/// report the same `frozen` value. A timed-out freeze is undone.
pub fn set_frozen(dir: &Path, frozen: bool, timeout: Duration) -> Result<(), V2Error> {
    let want = u8::from(frozen);
    fs::write_in(dir, "cgroup.freeze", &want.to_string())?;
    let start = Instant::now();
    loop {
        if frozen_state(dir)? == frozen {
            return Ok(());
        }
        if start.elapsed() >= timeout {
            break;
        }
        sleep(Duration::from_millis(1));
    }
    if frozen {
        let _ = fs::write_in(dir, "cgroup.freeze", "0");
    }
    Err(V2Error::FreezeTimeout {
        dir: dir.to_path_buf(),
        want,
        timeout,
    })
}

/// `frozen` from cgroup.events.
pub fn frozen_state(dir: &Path) -> Result<bool, FsError> {
    let text = fs::read_in(dir, "cgroup.events")?;
    Ok(parse_flat_keyed(&text).get("frozen").copied() == Some(1))
}

/// `oom_kill` from memory.events.
pub fn oom_kill_count(dir: &Path) -> Result<u64, FsError> {
    let text = fs::read_in(dir, "memory.events")?;
    Ok(parse_flat_keyed(&text)
        .get("oom_kill")
        .copied()
        .unwrap_or(0))
}
