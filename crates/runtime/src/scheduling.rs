//! How the kernel runs the container's process: `linux.personality`, `linux.memoryPolicy`,
//! `process.ioPriority`, `process.scheduler` and `process.execCPUAffinity`. Applied in the forked
//! child before it drops capabilities (a real-time policy needs CAP_SYS_NICE).

use oci_spec::runtime::{
    IOPriorityClass, LinuxMemoryPolicy, LinuxPersonality, LinuxPersonalityDomain,
    LinuxSchedulerFlag, LinuxSchedulerPolicy, MemoryPolicyFlagType, MemoryPolicyModeType, Process,
};

use crate::sys::{self, SchedAttr};

#[derive(Debug, thiserror::Error)]
pub enum SchedulingError {
    #[error("setting personality {domain}: {source}")]
    Personality { domain: String, source: nix::Error },
    #[error("unknown personality flag {0:?}")]
    PersonalityFlag(String),
    #[error("setting the I/O priority to class {class:?} level {priority}: {source}")]
    IoPriority {
        class: IOPriorityClass,
        priority: i64,
        source: std::io::Error,
    },
    #[error("invalid CPU or node list {0:?}")]
    List(String),
    #[error("setting the CPU affinity to {list}: {source}")]
    Affinity { list: String, source: nix::Error },
    #[error("setting the memory policy {mode:?} on nodes {nodes:?}: {source}")]
    MemoryPolicy {
        mode: MemoryPolicyModeType,
        nodes: String,
        source: std::io::Error,
    },
    #[error("setting the scheduler to {policy:?}: {source}")]
    Scheduler {
        policy: LinuxSchedulerPolicy,
        source: std::io::Error,
    },
}

/// The execution domain and flags of `linux.personality`.
pub fn set_personality(p: &LinuxPersonality) -> Result<(), SchedulingError> {
    use nix::sys::personality::{self, Persona};
    const PER_LINUX32: i32 = 0x0008;
    let mut persona = match p.domain() {
        LinuxPersonalityDomain::PerLinux => Persona::empty(),
        LinuxPersonalityDomain::PerLinux32 => Persona::from_bits_retain(PER_LINUX32),
    };
    for flag in p.flags().iter().flatten() {
        persona |= match flag.as_str() {
            "ADDR_NO_RANDOMIZE" => Persona::ADDR_NO_RANDOMIZE,
            "ADDR_COMPAT_LAYOUT" => Persona::ADDR_COMPAT_LAYOUT,
            "ADDR_LIMIT_32BIT" => Persona::ADDR_LIMIT_32BIT,
            "ADDR_LIMIT_3GB" => Persona::ADDR_LIMIT_3GB,
            "READ_IMPLIES_EXEC" => Persona::READ_IMPLIES_EXEC,
            "MMAP_PAGE_ZERO" => Persona::MMAP_PAGE_ZERO,
            "SHORT_INODE" => Persona::SHORT_INODE,
            "STICKY_TIMEOUTS" => Persona::STICKY_TIMEOUTS,
            "WHOLE_SECONDS" => Persona::WHOLE_SECONDS,
            other => return Err(SchedulingError::PersonalityFlag(other.to_string())),
        };
    }
    personality::set(persona)
        .map(drop)
        .map_err(|source| SchedulingError::Personality {
            domain: p.domain().to_string(),
            source,
        })
}

/// `process.ioPriority`, `process.scheduler` and the `final` CPU affinity of
/// `process.execCPUAffinity`, if set.
pub fn apply(process: &Process) -> Result<(), SchedulingError> {
    if let Some(list) = process
        .exec_cpu_affinity()
        .as_ref()
        .and_then(|a| a.cpu_affinity_final().as_deref())
    {
        set_affinity(list)?;
    }
    if let Some(io) = process.io_priority() {
        let class = match io.class() {
            IOPriorityClass::IoprioClassRt => 1,
            IOPriorityClass::IoprioClassBe => 2,
            IOPriorityClass::IoprioClassIdle => 3,
        };
        let prio = (class << 13) | (io.priority() as i32 & 0x1fff);
        sys::ioprio_set_self(prio).map_err(|source| SchedulingError::IoPriority {
            class: io.class(),
            priority: io.priority(),
            source,
        })?;
    }
    if let Some(s) = process.scheduler() {
        let policy = match s.policy() {
            LinuxSchedulerPolicy::SchedOther => 0,
            LinuxSchedulerPolicy::SchedFifo => 1,
            LinuxSchedulerPolicy::SchedRr => 2,
            LinuxSchedulerPolicy::SchedBatch => 3,
            LinuxSchedulerPolicy::SchedIso => 4,
            LinuxSchedulerPolicy::SchedIdle => 5,
            LinuxSchedulerPolicy::SchedDeadline => 6,
        };
        let flags = s.flags().iter().flatten().fold(0u64, |acc, f| {
            acc | match f {
                LinuxSchedulerFlag::SchedResetOnFork => 0x01,
                LinuxSchedulerFlag::SchedFlagReclaim => 0x02,
                LinuxSchedulerFlag::SchedFlagDLOverrun => 0x04,
                LinuxSchedulerFlag::SchedFlagKeepPolicy => 0x08,
                LinuxSchedulerFlag::SchedFlagKeepParams => 0x10,
                LinuxSchedulerFlag::SchedFlagUtilClampMin => 0x20,
                LinuxSchedulerFlag::SchedFlagUtilClampMax => 0x40,
            }
        });
        let attr = SchedAttr {
            sched_policy: policy,
            sched_flags: flags,
            sched_nice: s.nice().unwrap_or(0),
            sched_priority: s.priority().unwrap_or(0) as u32,
            sched_runtime: s.runtime().unwrap_or(0),
            sched_deadline: s.deadline().unwrap_or(0),
            sched_period: s.period().unwrap_or(0),
            ..SchedAttr::default()
        };
        sys::sched_setattr_self(&attr).map_err(|source| SchedulingError::Scheduler {
            policy: *s.policy(),
            source,
        })?;
    }
    Ok(())
}

/// Parses a list such as `0-3,7` (CPUs or NUMA nodes).
pub fn parse_list(list: &str) -> Result<Vec<usize>, SchedulingError> {
    let bad = || SchedulingError::List(list.to_string());
    let mut out = Vec::new();
    for part in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (lo, hi) = match part.split_once('-') {
            Some((lo, hi)) => (lo, hi),
            None => (part, part),
        };
        let lo: usize = lo.trim().parse().map_err(|_| bad())?;
        let hi: usize = hi.trim().parse().map_err(|_| bad())?;
        if lo > hi || hi >= 4096 {
            return Err(bad());
        }
        out.extend(lo..=hi);
    }
    Ok(out)
}

/// Pins the calling process to the CPUs of `list`.
pub fn set_affinity(list: &str) -> Result<(), SchedulingError> {
    let mut set = nix::sched::CpuSet::new();
    for cpu in parse_list(list)? {
        set.set(cpu)
            .map_err(|_| SchedulingError::List(list.to_string()))?;
    }
    nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &set).map_err(|source| {
        SchedulingError::Affinity {
            list: list.to_string(),
            source,
        }
    })
}

/// The `initial` CPU affinity of `process.execCPUAffinity`, for the start of the child.
pub fn initial_affinity(process: &Process) -> Result<(), SchedulingError> {
    match process
        .exec_cpu_affinity()
        .as_ref()
        .and_then(|a| a.initial().as_deref())
    {
        Some(list) => set_affinity(list),
        None => Ok(()),
    }
}

/// `linux.memoryPolicy`: set_mempolicy(2) with its mode, flags and nodes.
pub fn set_memory_policy(policy: &LinuxMemoryPolicy) -> Result<(), SchedulingError> {
    let mode = match policy.mode() {
        MemoryPolicyModeType::MpolDefault => 0,
        MemoryPolicyModeType::MpolPreferred => 1,
        MemoryPolicyModeType::MpolBind => 2,
        MemoryPolicyModeType::MpolInterleave => 3,
        MemoryPolicyModeType::MpolLocal => 4,
        MemoryPolicyModeType::MpolPreferredMany => 5,
        MemoryPolicyModeType::MpolWeightedInterleave => 6,
    };
    let flags = policy.flags().iter().flatten().fold(0, |acc, f| {
        acc | match f {
            MemoryPolicyFlagType::MpolFNumaBalancing => 1 << 13,
            MemoryPolicyFlagType::MpolFRelativeNodes => 1 << 14,
            MemoryPolicyFlagType::MpolFStaticNodes => 1 << 15,
        }
    });
    let nodes = policy.nodes().clone().unwrap_or_default();
    let bits = libc::c_ulong::BITS as usize;
    let mut mask: Vec<libc::c_ulong> = Vec::new();
    for node in parse_list(&nodes)? {
        if mask.len() <= node / bits {
            mask.resize(node / bits + 1, 0);
        }
        mask[node / bits] |= 1 << (node % bits);
    }
    sys::set_mempolicy_self(mode | flags, &mask).map_err(|source| SchedulingError::MemoryPolicy {
        mode: policy.mode(),
        nodes,
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists() {
        assert_eq!(parse_list("0-3,7").unwrap(), vec![0, 1, 2, 3, 7]);
        assert_eq!(parse_list("5").unwrap(), vec![5]);
        assert!(parse_list("3-1").is_err());
        assert!(parse_list("a").is_err());
    }
}
