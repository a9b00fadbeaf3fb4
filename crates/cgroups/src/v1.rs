//! cgroup v1 (legacy) controllers: writing OCI resources into one
//! controller directory each, with runc's file names, units and write order;
//! cpuset inheritance on creation; the v1 freezer; OOM-kill counting.

use std::path::Path;
use std::thread::sleep;
use std::time::{Duration, Instant};

use oci_spec::runtime::{
    LinuxBlockIo, LinuxCpu, LinuxDeviceCgroup, LinuxHugepageLimit, LinuxMemory, LinuxThrottleDevice,
};

use crate::convert::{self, ConvertError};
use crate::fs::{self, FsError};

/// A v1 controller setting that could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum V1Error {
    /// A cgroup file could not be read or written.
    #[error(transparent)]
    Fs(#[from] FsError),
    /// An OCI value could not be converted.
    #[error(transparent)]
    Convert(#[from] ConvertError),
    /// The memory limit is below what the cgroup already uses.
    #[error("{source} (current usage {usage} bytes, peak {peak} bytes)")]
    MemoryLimitBusy {
        /// The failed write.
        source: FsError,
        /// memory.usage_in_bytes.
        usage: u64,
        /// memory.max_usage_in_bytes.
        peak: u64,
    },
    /// `checkBeforeUpdate` was set and the new limit is below the usage.
    #[error("memory.limit {limit} is below the current usage of {usage} bytes in {}", dir.display())]
    LimitBelowUsage {
        /// The requested limit.
        limit: i64,
        /// The current usage.
        usage: u64,
        /// The cgroup directory.
        dir: std::path::PathBuf,
    },
    /// The kernel clamped cpu.shares to another value.
    #[error("cpu.shares: wrote {requested} to {} but the kernel kept {applied} (allowed range 2-262144)", dir.display())]
    SharesClamped {
        /// The requested shares.
        requested: u64,
        /// What cpu.shares reads back.
        applied: u64,
        /// The cgroup directory.
        dir: std::path::PathBuf,
    },
    /// None of the files that implement a requested setting exists.
    #[error("{setting} was requested but {} does not exist (not supported by this kernel or I/O scheduler)", files.join(" / "))]
    Unsupported {
        /// The OCI setting (e.g. `blockIO.weight`).
        setting: &'static str,
        /// The file(s) looked for, full paths.
        files: Vec<String>,
    },
    /// The freezer did not reach the wanted state in time.
    #[error("freezer.state in {} did not become {want} within {timeout:?} (last state {last:?})", dir.display())]
    FreezeTimeout {
        /// The cgroup directory.
        dir: std::path::PathBuf,
        /// FROZEN or THAWED.
        want: &'static str,
        /// The last state read.
        last: String,
        /// How long we waited.
        timeout: Duration,
    },
}

/// Creates a cpuset cgroup level by level from `mount_point` down to `dir`,
/// copying the parent's `cpuset.cpus`/`cpuset.mems` into every level whose
/// values are empty (a new v1 cpuset cgroup starts empty, and no task can
/// join it until both are set).
///
/// Each level above `dir` gets `cgroup.clone_children` set, so that the kernel gives its
/// children its values when they are made: a write of a child's `cpuset.cpus` is checked
/// against every sibling, a cost that grows with the number of containers.
pub fn create_cpuset(mount_point: &Path, dir: &Path) -> Result<(), V1Error> {
    let rel = dir.strip_prefix(mount_point).unwrap_or(dir);
    let mut current = mount_point.to_path_buf();
    let mut levels = rel.components().peekable();
    while let Some(comp) = levels.next() {
        let parent = current.clone();
        current.push(comp);
        fs::create_dir(&current)?;
        for file in ["cpuset.cpus", "cpuset.mems"] {
            let own = fs::read_in(&current, file)?;
            if own.trim().is_empty() {
                let inherited = fs::read_in(&parent, file)?;
                let inherited = inherited.trim();
                if !inherited.is_empty() {
                    fs::write_in(&current, file, inherited)?;
                }
            }
        }
        let above_dir = levels.peek().is_some();
        let cloning = fs::read_in(&current, CLONE_CHILDREN).map(|v| v.trim() == "1");
        if above_dir && matches!(cloning, Ok(false)) {
            // Best effort: without it, children's values are written as above.
            let _ = fs::write_in(&current, CLONE_CHILDREN, "1");
        }
    }
    Ok(())
}

/// A v1 cgroup's switch to give its new children its cpuset values.
const CLONE_CHILDREN: &str = "cgroup.clone_children";

/// memory.* : limit, memsw (OCI `swap` is memory+swap), soft limit, kmem,
/// swappiness, oom_control.
pub fn set_memory(dir: &Path, mem: &LinuxMemory) -> Result<(), V1Error> {
    let limit = mem.limit().unwrap_or(0);
    let mut swap = mem.swap().unwrap_or(0);
    let memsw = "memory.memsw.limit_in_bytes";
    if mem.check_before_update() == Some(true) && limit > 0 {
        let usage = fs::read_u64(dir, "memory.usage_in_bytes")?;
        if (limit as u64) < usage {
            return Err(V1Error::LimitBelowUsage {
                limit,
                usage,
                dir: dir.to_path_buf(),
            });
        }
    }
    // Unlimited memory with swap unset means unlimited memory+swap too.
    if limit == -1 && swap == 0 && dir.join(memsw).exists() {
        swap = -1;
    }
    if limit > 0 && swap > 0 && swap < limit {
        return Err(ConvertError::SwapBelowLimit { swap, limit }.into());
    }
    // The kernel keeps memsw >= limit at every step: when growing write
    // memsw first, when shrinking write the limit first.
    if limit != 0 && swap != 0 {
        let current = fs::read_u64(dir, "memory.limit_in_bytes")?;
        if swap == -1 || current < swap as u64 {
            fs::write_in(dir, memsw, &swap.to_string())?;
            write_limit(dir, limit)?;
        } else {
            write_limit(dir, limit)?;
            fs::write_in(dir, memsw, &swap.to_string())?;
        }
    } else {
        if limit != 0 {
            write_limit(dir, limit)?;
        }
        if swap != 0 {
            fs::write_in(dir, memsw, &swap.to_string())?;
        }
    }
    if let Some(res) = mem.reservation().filter(|r| *r != 0) {
        fs::write_in(dir, "memory.soft_limit_in_bytes", &res.to_string())?;
    }
    #[allow(deprecated)] // kernel memory is deprecated in the spec; honoured where it exists
    let kernel = mem.kernel();
    for (value, file) in [
        (kernel, "memory.kmem.limit_in_bytes"),
        (mem.kernel_tcp(), "memory.kmem.tcp.limit_in_bytes"),
    ] {
        if let Some(v) = value.filter(|v| *v != 0) {
            write_kmem(dir, file, v)?;
        }
    }
    if let Some(s) = mem.swappiness() {
        fs::write_in(dir, "memory.swappiness", &convert::swappiness(s)?)?;
    }
    if let Some(disable) = mem.disable_oom_killer() {
        fs::write_in(dir, "memory.oom_control", if disable { "1" } else { "0" })?;
    }
    Ok(())
}

/// Writes memory.limit_in_bytes, explaining EBUSY (limit below usage).
fn write_limit(dir: &Path, limit: i64) -> Result<(), V1Error> {
    match fs::write_in(dir, "memory.limit_in_bytes", &limit.to_string()) {
        Ok(()) => Ok(()),
        Err(source) if source.raw_os_error() == Some(nix::libc::EBUSY) => {
            Err(V1Error::MemoryLimitBusy {
                source,
                usage: fs::read_u64(dir, "memory.usage_in_bytes").unwrap_or(0),
                peak: fs::read_u64(dir, "memory.max_usage_in_bytes").unwrap_or(0),
            })
        }
        Err(e) => Err(e.into()),
    }
}

/// Kernel memory limits were removed from newer kernels: a missing file or
/// EOPNOTSUPP is ignored quietly.
fn write_kmem(dir: &Path, file: &str, value: i64) -> Result<(), V1Error> {
    match fs::write_in(dir, file, &value.to_string()) {
        Ok(()) => Ok(()),
        Err(e) if e.is_not_found() || e.raw_os_error() == Some(nix::libc::EOPNOTSUPP) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Whether any `cpu` controller field (not cpuset) is set.
pub fn wants_cpu(cpu: &LinuxCpu) -> bool {
    cpu.shares().is_some_and(|v| v != 0)
        || cpu.quota().is_some_and(|v| v != 0)
        || cpu.period().is_some_and(|v| v != 0)
        || cpu.burst().is_some()
        || cpu.realtime_runtime().is_some_and(|v| v != 0)
        || cpu.realtime_period().is_some_and(|v| v != 0)
        || cpu.idle().is_some()
}

/// Whether cpus or mems is set.
pub fn wants_cpuset(cpu: &LinuxCpu) -> bool {
    cpu.cpus().as_deref().is_some_and(|s| !s.is_empty())
        || cpu.mems().as_deref().is_some_and(|s| !s.is_empty())
}

/// cpu.* : shares (checked on read-back), CFS quota/period/burst, RT
/// runtime/period, idle.
pub fn set_cpu(dir: &Path, cpu: &LinuxCpu) -> Result<(), V1Error> {
    if let Some(shares) = cpu.shares().filter(|s| *s != 0) {
        fs::write_in(dir, "cpu.shares", &shares.to_string())?;
        let applied = fs::read_u64(dir, "cpu.shares")?;
        if applied != shares {
            return Err(V1Error::SharesClamped {
                requested: shares,
                applied,
                dir: dir.to_path_buf(),
            });
        }
    }
    write_period_pair(
        dir,
        ("cpu.cfs_period_us", cpu.period().filter(|p| *p != 0)),
        ("cpu.cfs_quota_us", cpu.quota().filter(|q| *q != 0)),
    )?;
    if let Some(burst) = cpu.burst() {
        fs::write_in(dir, "cpu.cfs_burst_us", &burst.to_string())?;
    }
    write_period_pair(
        dir,
        (
            "cpu.rt_period_us",
            cpu.realtime_period().filter(|p| *p != 0),
        ),
        (
            "cpu.rt_runtime_us",
            cpu.realtime_runtime().filter(|r| *r != 0),
        ),
    )?;
    if let Some(idle) = cpu.idle() {
        fs::write_in(dir, "cpu.idle", &idle.to_string())?;
    }
    Ok(())
}

/// Writes a period then its budget. A smaller period can be refused
/// (EINVAL) while the old budget is in place; then it is retried after the
/// budget is written, as runc does.
fn write_period_pair(
    dir: &Path,
    (period_file, period): (&str, Option<u64>),
    (budget_file, budget): (&str, Option<i64>),
) -> Result<(), V1Error> {
    let mut retry_period = None;
    if let Some(p) = period {
        let value = p.to_string();
        match fs::write_in(dir, period_file, &value) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(nix::libc::EINVAL) && budget.is_some() => {
                retry_period = Some(value);
            }
            Err(e) => return Err(e.into()),
        }
    }
    if let Some(b) = budget {
        fs::write_in(dir, budget_file, &b.to_string())?;
        if let Some(value) = retry_period {
            fs::write_in(dir, period_file, &value)?;
        }
    }
    Ok(())
}

/// cpuset.cpus and cpuset.mems.
pub fn set_cpuset(dir: &Path, cpu: &LinuxCpu) -> Result<(), V1Error> {
    if let Some(cpus) = cpu.cpus().as_deref().filter(|s| !s.is_empty()) {
        fs::write_in(dir, "cpuset.cpus", cpus)?;
    }
    if let Some(mems) = cpu.mems().as_deref().filter(|s| !s.is_empty()) {
        fs::write_in(dir, "cpuset.mems", mems)?;
    }
    Ok(())
}

/// pids.max (`max` for a limit <= 0). Same file name on v1 and v2.
pub fn set_pids(dir: &Path, limit: i64) -> Result<(), FsError> {
    let value = if limit > 0 {
        limit.to_string()
    } else {
        "max".to_string()
    };
    fs::write_in(dir, "pids.max", &value)
}

/// Writes `value` to the first of `files` that exists in `dir`; if none
/// does, the requested `setting` is unsupported here.
fn write_first(
    dir: &Path,
    files: &[&str],
    value: &str,
    setting: &'static str,
) -> Result<(), V1Error> {
    for file in files {
        if dir.join(file).exists() {
            return Ok(fs::write_in(dir, file, value)?);
        }
    }
    Err(V1Error::Unsupported {
        setting,
        files: files
            .iter()
            .map(|f| dir.join(f).display().to_string())
            .collect(),
    })
}

/// Whether any blockIO field is set.
pub fn wants_blkio(b: &LinuxBlockIo) -> bool {
    b.weight().is_some_and(|w| w != 0)
        || b.leaf_weight().is_some_and(|w| w != 0)
        || b.weight_device().as_ref().is_some_and(|v| !v.is_empty())
        || [
            b.throttle_read_bps_device(),
            b.throttle_write_bps_device(),
            b.throttle_read_iops_device(),
            b.throttle_write_iops_device(),
        ]
        .iter()
        .any(|t| t.as_ref().is_some_and(|v| !v.is_empty()))
}

/// blkio.* : (bfq.)weight, leaf_weight, (bfq.)weight_device,
/// leaf_weight_device and the four throttle files.
pub fn set_blkio(dir: &Path, b: &LinuxBlockIo) -> Result<(), V1Error> {
    // A weight of 0 means "not set", as runc and Docker (BlkioWeight 0) have it.
    if let Some(w) = b.weight().filter(|w| *w != 0) {
        write_first(
            dir,
            &["blkio.weight", "blkio.bfq.weight"],
            &w.to_string(),
            "blockIO.weight",
        )?;
    }
    if let Some(w) = b.leaf_weight().filter(|w| *w != 0) {
        write_first(
            dir,
            &["blkio.leaf_weight"],
            &w.to_string(),
            "blockIO.leafWeight",
        )?;
    }
    for wd in b.weight_device().iter().flatten() {
        let dev = format!("{}:{}", wd.major(), wd.minor());
        if let Some(w) = wd.weight() {
            write_first(
                dir,
                &["blkio.weight_device", "blkio.bfq.weight_device"],
                &format!("{dev} {w}"),
                "blockIO.weightDevice",
            )?;
        }
        if let Some(w) = wd.leaf_weight() {
            write_first(
                dir,
                &["blkio.leaf_weight_device"],
                &format!("{dev} {w}"),
                "blockIO.weightDevice.leafWeight",
            )?;
        }
    }
    let throttles: [(&Option<Vec<LinuxThrottleDevice>>, &str, &'static str); 4] = [
        (
            b.throttle_read_bps_device(),
            "blkio.throttle.read_bps_device",
            "blockIO.throttleReadBpsDevice",
        ),
        (
            b.throttle_write_bps_device(),
            "blkio.throttle.write_bps_device",
            "blockIO.throttleWriteBpsDevice",
        ),
        (
            b.throttle_read_iops_device(),
            "blkio.throttle.read_iops_device",
            "blockIO.throttleReadIOPSDevice",
        ),
        (
            b.throttle_write_iops_device(),
            "blkio.throttle.write_iops_device",
            "blockIO.throttleWriteIOPSDevice",
        ),
    ];
    for (devices, file, setting) in throttles {
        for td in devices.iter().flatten() {
            let line = format!("{}:{} {}", td.major(), td.minor(), td.rate());
            write_first(dir, &[file], &line, setting)?;
        }
    }
    Ok(())
}

/// hugetlb.<size>.limit_in_bytes, and the reservation limit where the
/// kernel has it.
pub fn set_hugetlb(dir: &Path, limits: &[LinuxHugepageLimit]) -> Result<(), V1Error> {
    for l in limits {
        let size = convert::page_size(l.page_size())?;
        let value = l.limit().to_string();
        fs::write_in(dir, &format!("hugetlb.{size}.limit_in_bytes"), &value)?;
        fs::write_if_exists(dir, &format!("hugetlb.{size}.rsvd.limit_in_bytes"), &value)?;
    }
    Ok(())
}

/// devices.allow / devices.deny, one rule per write, in the given order
/// (so a leading deny-all rule writes `a` to devices.deny first).
pub fn set_devices(dir: &Path, rules: &[LinuxDeviceCgroup]) -> Result<(), V1Error> {
    for rule in rules {
        let (file, line) = convert::device_rule(rule)?;
        fs::write_in(dir, file, &line)?;
    }
    Ok(())
}

/// freezer.state to FROZEN or THAWED, waiting (bounded) for the state.
///
/// Freezing is re-requested now and then, since a task can slip through
/// while it is forking; on timeout a freeze is undone.
pub fn set_frozen(dir: &Path, frozen: bool, timeout: Duration) -> Result<(), V1Error> {
    let want = if frozen { "FROZEN" } else { "THAWED" };
    let start = Instant::now();
    let mut last;
    let mut round: u32 = 0;
    loop {
        if round % 50 == 0 {
            fs::write_in(dir, "freezer.state", want)?;
        }
        last = fs::read_in(dir, "freezer.state")?.trim().to_string();
        if last == want {
            return Ok(());
        }
        if start.elapsed() >= timeout {
            break;
        }
        round += 1;
        sleep(Duration::from_millis(if round < 10 { 1 } else { 10 }));
    }
    if frozen {
        // Best effort: leave the tasks running rather than half frozen.
        let _ = fs::write_in(dir, "freezer.state", "THAWED");
    }
    Err(V1Error::FreezeTimeout {
        dir: dir.to_path_buf(),
        want,
        last,
        timeout,
    })
}

/// Whether freezer.state reads FROZEN (a transient FREEZING is waited out,
/// bounded by `timeout`, and then counts as not frozen).
pub fn is_frozen(dir: &Path, timeout: Duration) -> Result<bool, V1Error> {
    let start = Instant::now();
    loop {
        let state = fs::read_in(dir, "freezer.state")?;
        match state.trim() {
            "FREEZING" if start.elapsed() < timeout => sleep(Duration::from_millis(1)),
            s => return Ok(s == "FROZEN"),
        }
    }
}

/// The `oom_kill` count from memory.oom_control (0 on kernels without it).
pub fn oom_kill_count(dir: &Path) -> Result<u64, FsError> {
    let path = dir.join("memory.oom_control");
    let text = fs::read(&path)?;
    Ok(crate::stats::parse_flat_keyed(&text)
        .get("oom_kill")
        .copied()
        .unwrap_or(0))
}
