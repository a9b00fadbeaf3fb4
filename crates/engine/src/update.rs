//! `POST /containers/{id}/update` (`docker update`): new resource limits and restart policy,
//! merged into the container's host config as dockerd merges them (a field left out or zero is
//! unchanged), written to the cgroup of a running or paused container through the runtime, and
//! kept for its next starts.

use berth_api::models::ContainerUpdateBody;

use crate::container::spec::{HostSpec, RestartPolicy, RestartPolicyName};
use crate::container::Status;
use crate::error::{EngineError, Result};
use crate::wire::spec::Bridge;
use crate::Engine;

/// The smallest memory limit dockerd accepts (6 MB).
const MIN_MEMORY: i64 = 6 * 1024 * 1024;

/// `body` merged into `hc`, or dockerd's refusal.
fn merge(hc: &HostSpec, body: &ContainerUpdateBody) -> Result<HostSpec> {
    let invalid = |m: &str| Err(EngineError::InvalidParameter(m.to_string()));
    let mut new = hc.clone();
    let set = |v: Option<i64>| v.filter(|v| *v != 0);
    if let Some(m) = set(body.memory) {
        if m < MIN_MEMORY {
            return invalid("Minimum memory limit allowed is 6MB");
        }
        let swap = set(body.memory_swap).or(hc.memory_swap.filter(|s| *s > 0));
        if body.memory_swap.unwrap_or(0) == 0 && swap.is_some_and(|s| m > s) {
            return invalid(
                "Memory limit should be smaller than already set memoryswap limit, update the memoryswap at the same time",
            );
        }
        new.memory = Some(m);
    }
    if let Some(s) = set(body.memory_swap) {
        if s > 0 && s < new.memory.unwrap_or(0) {
            return invalid(
                "Minimum memoryswap limit should be larger than memory limit, see usage",
            );
        }
        new.memory_swap = Some(s);
    }
    if let Some(r) = set(body.memory_reservation) {
        new.memory_reservation = Some(r);
    }
    if let Some(n) = set(body.nano_cpus) {
        if hc.cpu_quota.unwrap_or(0) > 0 || hc.cpu_period.unwrap_or(0) > 0 {
            return invalid(
                "Conflicting options: Nano CPUs cannot be updated as CPU Period/Quota has already been set",
            );
        }
        new.nano_cpus = Some(n);
    }
    if set(body.cpu_quota).is_some() || set(body.cpu_period).is_some() {
        if hc.nano_cpus.unwrap_or(0) > 0 {
            return invalid(
                "Conflicting options: CPU Quota cannot be updated as NanoCPUs has already been set",
            );
        }
        if let Some(q) = set(body.cpu_quota) {
            new.cpu_quota = Some(q);
        }
        if let Some(p) = set(body.cpu_period) {
            new.cpu_period = Some(p);
        }
    }
    if let Some(s) = set(body.cpu_shares) {
        new.cpu_shares = Some(s);
    }
    if let Some(c) = body.cpuset_cpus.clone().filter(|c| !c.is_empty()) {
        new.cpuset_cpus = Some(c);
    }
    if let Some(m) = body.cpuset_mems.clone().filter(|m| !m.is_empty()) {
        new.cpuset_mems = Some(m);
    }
    if let Some(w) = body.blkio_weight.filter(|w| *w != 0) {
        new.blkio_weight = Some(w);
    }
    if let Some(p) = body.pids_limit {
        // 0 or less: unlimited.
        new.pids_limit = Some(p);
    }
    let policy: Option<RestartPolicy> = body.restart_policy.clone().bridge();
    if let Some(policy) = policy.filter(|p| {
        p.name
            .as_ref()
            .is_some_and(|n| *n != RestartPolicyName::Empty)
    }) {
        let restarts = policy.name != Some(RestartPolicyName::No);
        if hc.auto_remove == Some(true) && restarts {
            return invalid(
                "Restart policy cannot be updated because AutoRemove is enabled for the container",
            );
        }
        new.restart_policy = Some(policy);
    }
    Ok(new)
}

impl Engine {
    /// `POST /containers/{id}/update`; returns dockerd's warnings (none).
    pub fn update(&self, key: &str, body: &ContainerUpdateBody) -> Result<Vec<String>> {
        let c = self.containers.get(key)?;
        let new = merge(&c.host_config, body)?;
        let live = matches!(c.state.status, Status::Running | Status::Paused);
        if live {
            self.apply_resources(&c.id, &new)?;
        }
        let updated = match self.containers.update(&c.id, |r| r.host_config = new) {
            Ok(updated) => updated,
            Err(e) => {
                // Not recorded (a full disk): the cgroups go back to what the record says.
                if live {
                    if let Err(e) = self.apply_resources(&c.id, &c.host_config) {
                        tracing::warn!(container = %c.id, error = %e, "restoring the limits");
                    }
                }
                return Err(e);
            }
        };
        self.publish("update", &updated, &[]);
        Ok(Vec::new())
    }

    /// Writes the limits of `hc` to the cgroups of the running or paused container `id`. The
    /// runtime writes only what it is given: a memory, pids or CPU quota limit that `hc` does
    /// not set is written as none, so that going back to no limit (a restore, `--pids-limit
    /// -1`) takes effect.
    fn apply_resources(&self, id: &str, hc: &HostSpec) -> Result<()> {
        let mut resources = crate::spec::resources(hc);
        let mut memory = resources.memory().unwrap_or_default();
        if memory.limit().is_none() {
            memory.set_limit(Some(-1)).set_swap(Some(-1));
        }
        let mut pids = resources.pids().unwrap_or_default();
        if resources.pids().is_none() {
            pids.set_limit(-1);
        }
        let mut cpu = resources.cpu().clone().unwrap_or_default();
        if cpu.quota().is_none() {
            cpu.set_quota(Some(-1));
        }
        resources
            .set_memory(Some(memory))
            .set_pids(Some(pids))
            .set_cpu(Some(cpu));
        let c = self.containers.get(id)?;
        self.driver(&c)?
            .update(id, &resources)
            .map_err(|e| EngineError::Internal(format!("Cannot update container {id}: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_api::models::{RestartPolicy as ApiPolicy, RestartPolicyNameEnum};

    #[test]
    fn fields_left_out_or_zero_stay() {
        let hc = HostSpec {
            memory: Some(64 << 20),
            cpu_shares: Some(512),
            ..HostSpec::default()
        };
        let body = ContainerUpdateBody {
            memory: Some(0),
            cpu_shares: Some(256),
            pids_limit: Some(50),
            restart_policy: Some(ApiPolicy {
                name: Some(RestartPolicyNameEnum::ALWAYS),
                maximum_retry_count: None,
            }),
            ..ContainerUpdateBody::default()
        };
        let new = merge(&hc, &body).unwrap();
        assert_eq!(new.memory, Some(64 << 20));
        assert_eq!(new.cpu_shares, Some(256));
        assert_eq!(new.pids_limit, Some(50));
        assert_eq!(
            new.restart_policy.and_then(|p| p.name),
            Some(RestartPolicyName::Always)
        );
    }

    #[test]
    fn dockerds_refusals() {
        let hc = HostSpec {
            memory_swap: Some(100 << 20),
            auto_remove: Some(true),
            ..HostSpec::default()
        };
        let refuse = |body: ContainerUpdateBody| merge(&hc, &body).unwrap_err().to_string();
        assert_eq!(
            refuse(ContainerUpdateBody {
                memory: Some(1 << 20),
                ..ContainerUpdateBody::default()
            }),
            "Minimum memory limit allowed is 6MB"
        );
        assert!(refuse(ContainerUpdateBody {
            memory: Some(200 << 20),
            ..ContainerUpdateBody::default()
        })
        .starts_with("Memory limit should be smaller than already set memoryswap limit"));
        assert_eq!(
            refuse(ContainerUpdateBody {
                restart_policy: Some(ApiPolicy {
                    name: Some(RestartPolicyNameEnum::ALWAYS),
                    maximum_retry_count: None,
                }),
                ..ContainerUpdateBody::default()
            }),
            "Restart policy cannot be updated because AutoRemove is enabled for the container"
        );
    }
}
