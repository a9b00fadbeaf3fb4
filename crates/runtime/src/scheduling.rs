//! How the kernel runs the container's process: `linux.personality`, `process.ioPriority` and
//! `process.scheduler`. Applied in the forked child before it drops capabilities (a real-time
//! policy needs CAP_SYS_NICE).

use oci_spec::runtime::{
    IOPriorityClass, LinuxPersonality, LinuxPersonalityDomain, LinuxSchedulerFlag,
    LinuxSchedulerPolicy, Process,
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

/// `process.ioPriority` and `process.scheduler`, if set.
pub fn apply(process: &Process) -> Result<(), SchedulingError> {
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
