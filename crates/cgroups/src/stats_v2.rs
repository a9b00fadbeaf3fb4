//! Reading [`Stats`](crate::Stats) parts from a cgroup v2 directory
//! (cpu.stat, memory.*, io.stat, hugetlb.*), converted to runc's units and
//! v1-compatible meanings.

use std::collections::BTreeMap;
use std::path::Path;

use crate::fs::{self, FsError};
use crate::stats::{
    parse_flat_keyed, parse_io_stat, Blkio, Cpu, CpuUsage, Hugetlb, Memory, MemoryEntry, Throttling,
};
use crate::stats_v1::page_sizes;

/// cpu.stat (µs → ns). Available even without the cpu controller enabled.
pub fn cpu(dir: &Path) -> Result<Cpu, FsError> {
    let stat = parse_flat_keyed(&fs::read_in(dir, "cpu.stat")?);
    let get = |k: &str| stat.get(k).copied().unwrap_or(0);
    Ok(Cpu {
        usage: CpuUsage {
            total: get("usage_usec").saturating_mul(1000),
            percpu: Vec::new(),
            kernel: get("system_usec").saturating_mul(1000),
            user: get("user_usec").saturating_mul(1000),
        },
        throttling: Throttling {
            periods: get("nr_periods"),
            throttled_periods: get("nr_throttled"),
            throttled_time: get("throttled_usec").saturating_mul(1000),
        },
    })
}

/// memory.stat, memory.current/max/peak and the swap counters; swap is
/// reported as memory+swap, like v1's memsw (as runc does).
pub fn memory(dir: &Path) -> Result<Memory, FsError> {
    let raw = parse_flat_keyed(&fs::read_in(dir, "memory.stat")?);
    let events = fs::read_opt(dir, "memory.events")?
        .map(|t| parse_flat_keyed(&t))
        .unwrap_or_default();
    let usage = MemoryEntry {
        usage: fs::read_u64(dir, "memory.current")?,
        max: fs::read_u64_opt(dir, "memory.peak")?.unwrap_or(0),
        limit: fs::read_u64(dir, "memory.max")?,
        failcnt: events.get("max").copied().unwrap_or(0),
    };
    let swap = match fs::read_u64_opt(dir, "memory.swap.current")? {
        Some(swap_usage) => MemoryEntry {
            usage: swap_usage.saturating_add(usage.usage),
            max: 0,
            limit: fs::read_u64_opt(dir, "memory.swap.max")?
                .unwrap_or(0)
                .saturating_add(usage.limit),
            failcnt: 0,
        },
        None => MemoryEntry::default(),
    };
    Ok(Memory {
        cache: raw.get("file").copied().unwrap_or(0),
        usage,
        swap,
        kernel: MemoryEntry::default(),
        kernel_tcp: MemoryEntry::default(),
        raw,
    })
}

/// io.stat as runc's blkio recursive entries.
pub fn io(dir: &Path) -> Result<Blkio, FsError> {
    let Some(text) = fs::read_opt(dir, "io.stat")? else {
        return Ok(Blkio::default());
    };
    let (bytes, ios) = parse_io_stat(&text);
    Ok(Blkio {
        io_service_bytes_recursive: bytes,
        io_serviced_recursive: ios,
    })
}

/// hugetlb.<size>.current and the `max` count of hugetlb.<size>.events.
pub fn hugetlb(dir: &Path) -> Result<BTreeMap<String, Hugetlb>, FsError> {
    let mut out = BTreeMap::new();
    for size in page_sizes(dir, ".max")? {
        let usage = fs::read_u64_opt(dir, &format!("hugetlb.{size}.current"))?.unwrap_or(0);
        let failcnt = fs::read_opt(dir, &format!("hugetlb.{size}.events"))?
            .and_then(|t| parse_flat_keyed(&t).get("max").copied())
            .unwrap_or(0);
        out.insert(
            size,
            Hugetlb {
                usage,
                max: 0,
                failcnt,
            },
        );
    }
    Ok(out)
}
