//! `berth-runtime update`: new resource limits for a running container, from a JSON
//! `LinuxResources` (`--resources FILE`, `-` for stdin) and/or runc's flags.

use std::io::Read;
use std::path::PathBuf;

use anyhow::{anyhow, Context, Result};
use berth_runtime::Runtime;
use oci_spec::runtime::LinuxResources;

#[derive(clap::Args, Debug)]
pub struct UpdateArgs {
    /// A JSON file with the resources (linux.resources of config.json), `-` for stdin.
    #[arg(short, long)]
    resources: Option<PathBuf>,
    /// Memory limit in bytes.
    #[arg(long)]
    memory: Option<i64>,
    /// Memory plus swap limit in bytes (-1: unlimited).
    #[arg(long = "memory-swap")]
    memory_swap: Option<i64>,
    /// Memory reservation (soft limit) in bytes.
    #[arg(long = "memory-reservation")]
    memory_reservation: Option<i64>,
    /// CPU shares (relative weight).
    #[arg(long = "cpu-shares")]
    cpu_shares: Option<u64>,
    /// CPU CFS quota in microseconds.
    #[arg(long = "cpu-quota")]
    cpu_quota: Option<i64>,
    /// CPU CFS period in microseconds.
    #[arg(long = "cpu-period")]
    cpu_period: Option<u64>,
    /// CPUs to run on (0-3, 0,1).
    #[arg(long = "cpuset-cpus")]
    cpuset_cpus: Option<String>,
    /// Memory nodes to use (0-3, 0,1).
    #[arg(long = "cpuset-mems")]
    cpuset_mems: Option<String>,
    /// Maximum number of processes (-1: unlimited).
    #[arg(long = "pids-limit")]
    pids_limit: Option<i64>,
    /// Block I/O weight (10-1000).
    #[arg(long = "blkio-weight")]
    blkio_weight: Option<u16>,
    container_id: String,
}

fn read_resources(path: &PathBuf) -> Result<LinuxResources> {
    let mut data = Vec::new();
    if path.as_os_str() == "-" {
        std::io::stdin()
            .read_to_end(&mut data)
            .context("reading stdin")?;
    } else {
        data = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    }
    let mut de = serde_json::Deserializer::from_slice(&data);
    serde_path_to_error::deserialize(&mut de)
        .map_err(|e| anyhow!("invalid resources at `{}`: {}", e.path(), e.inner()))
}

/// The resources the flags ask for, on top of `base`.
fn with_flags(mut r: LinuxResources, a: &UpdateArgs) -> LinuxResources {
    let mut memory = r.memory().unwrap_or_default();
    if a.memory.is_some() {
        memory.set_limit(a.memory);
    }
    if a.memory_swap.is_some() {
        memory.set_swap(a.memory_swap);
    }
    if a.memory_reservation.is_some() {
        memory.set_reservation(a.memory_reservation);
    }
    if a.memory.is_some() || a.memory_swap.is_some() || a.memory_reservation.is_some() {
        r.set_memory(Some(memory));
    }
    let mut cpu = r.cpu().clone().unwrap_or_default();
    let mut cpu_set = false;
    if let Some(v) = a.cpu_shares {
        cpu.set_shares(Some(v));
        cpu_set = true;
    }
    if let Some(v) = a.cpu_quota {
        cpu.set_quota(Some(v));
        cpu_set = true;
    }
    if let Some(v) = a.cpu_period {
        cpu.set_period(Some(v));
        cpu_set = true;
    }
    if let Some(v) = &a.cpuset_cpus {
        cpu.set_cpus(Some(v.clone()));
        cpu_set = true;
    }
    if let Some(v) = &a.cpuset_mems {
        cpu.set_mems(Some(v.clone()));
        cpu_set = true;
    }
    if cpu_set {
        r.set_cpu(Some(cpu));
    }
    if let Some(limit) = a.pids_limit {
        let mut pids = oci_spec::runtime::LinuxPids::default();
        pids.set_limit(limit);
        r.set_pids(Some(pids));
    }
    if let Some(weight) = a.blkio_weight {
        let mut blkio = r.block_io().clone().unwrap_or_default();
        blkio.set_weight(Some(weight));
        r.set_block_io(Some(blkio));
    }
    r
}

pub fn run(rt: &Runtime, args: UpdateArgs) -> Result<()> {
    let base = match &args.resources {
        Some(path) => read_resources(path)?,
        None => LinuxResources::default(),
    };
    let resources = with_flags(base, &args);
    rt.update(&args.container_id, &resources)?;
    Ok(())
}
