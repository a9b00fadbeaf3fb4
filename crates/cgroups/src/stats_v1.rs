//! Reading [`Stats`](crate::Stats) parts from cgroup v1 controller
//! directories (cpu/cpuacct, memory, pids, blkio, hugetlb), with the same
//! sources and units as runc.

use std::collections::BTreeMap;
use std::path::Path;

use crate::fs::{self, FsError};
use crate::stats::{
    parse_blkio_v1, parse_flat_keyed, parse_numbers, Blkio, CpuUsage, Hugetlb, Memory, MemoryEntry,
    Pids, Throttling,
};

/// USER_HZ: cpuacct.stat counts in these ticks. It is part of the kernel
/// ABI and 100 on every Linux architecture (runc hard-codes it too).
const USER_HZ: u64 = 100;
const NANOS_PER_SEC: u64 = 1_000_000_000;

/// cpuacct.usage, cpuacct.usage_percpu and cpuacct.stat (ticks → ns).
pub fn cpu_usage(cpuacct: &Path) -> Result<CpuUsage, FsError> {
    let total = fs::read_u64(cpuacct, "cpuacct.usage")?;
    let percpu = fs::read_opt(cpuacct, "cpuacct.usage_percpu")?
        .map(|t| parse_numbers(&t))
        .unwrap_or_default();
    let stat = parse_flat_keyed(&fs::read_in(cpuacct, "cpuacct.stat")?);
    let ticks = |k: &str| stat.get(k).copied().unwrap_or(0) * (NANOS_PER_SEC / USER_HZ);
    Ok(CpuUsage {
        total,
        percpu,
        kernel: ticks("system"),
        user: ticks("user"),
    })
}

/// cpu.stat: nr_periods, nr_throttled, throttled_time (ns).
pub fn cpu_throttling(cpu: &Path) -> Result<Throttling, FsError> {
    let stat = fs::read_opt(cpu, "cpu.stat")?
        .map(|t| parse_flat_keyed(&t))
        .unwrap_or_default();
    let get = |k: &str| stat.get(k).copied().unwrap_or(0);
    Ok(Throttling {
        periods: get("nr_periods"),
        throttled_periods: get("nr_throttled"),
        throttled_time: get("throttled_time"),
    })
}

/// One `memory[.<module>].{usage_in_bytes,max_usage_in_bytes,failcnt,limit_in_bytes}`
/// set; all zero when the module (memsw, kmem...) is absent.
fn memory_entry(dir: &Path, module: &str) -> Result<MemoryEntry, FsError> {
    let prefix = if module.is_empty() {
        "memory".to_string()
    } else {
        format!("memory.{module}")
    };
    let Some(usage) = fs::read_u64_opt(dir, &format!("{prefix}.usage_in_bytes"))? else {
        return Ok(MemoryEntry::default());
    };
    Ok(MemoryEntry {
        usage,
        max: fs::read_u64_opt(dir, &format!("{prefix}.max_usage_in_bytes"))?.unwrap_or(0),
        failcnt: fs::read_u64_opt(dir, &format!("{prefix}.failcnt"))?.unwrap_or(0),
        limit: fs::read_u64_opt(dir, &format!("{prefix}.limit_in_bytes"))?.unwrap_or(0),
    })
}

/// memory.stat plus the usage/memsw/kmem/kmem.tcp counters.
pub fn memory(dir: &Path) -> Result<Memory, FsError> {
    let raw: BTreeMap<String, u64> = parse_flat_keyed(&fs::read_in(dir, "memory.stat")?);
    Ok(Memory {
        cache: raw.get("cache").copied().unwrap_or(0),
        usage: memory_entry(dir, "")?,
        swap: memory_entry(dir, "memsw")?,
        kernel: memory_entry(dir, "kmem")?,
        kernel_tcp: memory_entry(dir, "kmem.tcp")?,
        raw,
    })
}

/// pids.current and pids.max (`max` → 0). Same files on v2.
pub fn pids(dir: &Path) -> Result<Pids, FsError> {
    let current = fs::read_u64(dir, "pids.current")?;
    let limit = match fs::read_u64_opt(dir, "pids.max")? {
        Some(u64::MAX) | None => 0,
        Some(v) => v,
    };
    Ok(Pids { current, limit })
}

/// blkio: the first of the CFQ, BFQ and throttle families that has data
/// (the throttle files count I/O on every device, whatever the scheduler).
pub fn blkio(dir: &Path) -> Result<Blkio, FsError> {
    let families = [
        (
            "blkio.io_service_bytes_recursive",
            "blkio.io_serviced_recursive",
        ),
        (
            "blkio.bfq.io_service_bytes_recursive",
            "blkio.bfq.io_serviced_recursive",
        ),
        (
            "blkio.throttle.io_service_bytes_recursive",
            "blkio.throttle.io_serviced_recursive",
        ),
    ];
    for (bytes_file, ios_file) in families {
        let Some(bytes) = fs::read_opt(dir, bytes_file)? else {
            continue;
        };
        let bytes = parse_blkio_v1(&bytes);
        if bytes.is_empty() {
            continue;
        }
        let ios = fs::read_opt(dir, ios_file)?
            .map(|t| parse_blkio_v1(&t))
            .unwrap_or_default();
        return Ok(Blkio {
            io_service_bytes_recursive: bytes,
            io_serviced_recursive: ios,
        });
    }
    Ok(Blkio::default())
}

/// hugetlb.<size>.{usage_in_bytes,max_usage_in_bytes,failcnt} for every
/// size the directory has.
pub fn hugetlb(dir: &Path) -> Result<BTreeMap<String, Hugetlb>, FsError> {
    let mut out = BTreeMap::new();
    for size in page_sizes(dir, ".limit_in_bytes")? {
        let get = |f: &str| fs::read_u64_opt(dir, &format!("hugetlb.{size}.{f}"));
        out.insert(
            size.clone(),
            Hugetlb {
                usage: get("usage_in_bytes")?.unwrap_or(0),
                max: get("max_usage_in_bytes")?.unwrap_or(0),
                failcnt: get("failcnt")?.unwrap_or(0),
            },
        );
    }
    Ok(out)
}

/// The page sizes for which `hugetlb.<size><suffix>` exists in `dir`
/// (reservation files, `hugetlb.<size>.rsvd...`, are not counted).
pub fn page_sizes(dir: &Path, suffix: &str) -> Result<Vec<String>, FsError> {
    let entries = std::fs::read_dir(dir).map_err(|err| FsError::ReadDir {
        path: dir.to_path_buf(),
        err,
    })?;
    let mut sizes: Vec<String> = entries
        .filter_map(Result::ok)
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let size = name.strip_prefix("hugetlb.")?.strip_suffix(suffix)?;
            (!size.contains('.')).then(|| size.to_string())
        })
        .collect();
    sizes.sort();
    Ok(sizes)
}
