//! Docker's seccomp profile format (`docker run --security-opt seccomp=FILE`, dockerd's
//! `--seccomp-profile`, the built-in `default.json`) and its resolution into the OCI
//! `linux.seccomp` of one container, as moby's `setupSeccomp` does it.
//!
//! A rule (`syscalls[]`) is kept when its `excludes` do not match and its `includes` all do:
//! `arches` against the host's architecture (libseccomp's names: `amd64`, `arm64`, `x86`...),
//! `caps` against the container's capabilities (any excluded one drops the rule, every included
//! one is needed), `minKernel` (`"<kernel>.<major>"`) against the running kernel. `archMap`
//! gives the architectures of the host's entry (with its sub-architectures); `architectures`
//! is taken as it is. `listenerPath` and `SCMP_ACT_NOTIFY` (a seccomp agent) are refused:
//! berthd hands no listener to an agent.

use serde::Deserialize;
use serde_json::{json, Value};

use super::host::{Host, KernelVersion};
use super::Error;

/// A profile in Docker's format. Unknown keys are ignored, as Docker's decoder does.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Profile {
    #[serde(default)]
    default_action: Option<String>,
    #[serde(default)]
    default_errno_ret: Option<u32>,
    #[serde(default)]
    architectures: Option<Vec<String>>,
    #[serde(default)]
    arch_map: Option<Vec<ArchMap>>,
    #[serde(default)]
    syscalls: Option<Vec<Syscall>>,
    #[serde(default)]
    flags: Option<Vec<String>>,
    #[serde(default)]
    listener_path: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ArchMap {
    architecture: String,
    #[serde(default)]
    sub_architectures: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Syscall {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    names: Option<Vec<String>>,
    action: String,
    #[serde(default)]
    errno_ret: Option<u32>,
    #[serde(default)]
    args: Option<Vec<Arg>>,
    #[serde(default)]
    includes: Option<Filter>,
    #[serde(default)]
    excludes: Option<Filter>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Arg {
    index: u32,
    value: u64,
    #[serde(default)]
    value_two: u64,
    op: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Filter {
    #[serde(default)]
    caps: Option<Vec<String>>,
    #[serde(default)]
    arches: Option<Vec<String>>,
    #[serde(default)]
    min_kernel: Option<String>,
}

impl Profile {
    /// Decodes a profile's JSON; every `minKernel` must read as a version (Docker decodes them
    /// with the profile, whether their rule applies or not).
    pub(crate) fn parse(text: &str) -> Result<Profile, Error> {
        let profile: Profile =
            serde_json::from_str(text).map_err(|e| Error::Decode(e.to_string()))?;
        let filters = profile
            .syscalls
            .iter()
            .flatten()
            .flat_map(|s| [&s.includes, &s.excludes])
            .flatten();
        for min in filters.filter_map(|f| f.min_kernel.as_deref()) {
            if !min.is_empty() && KernelVersion::parse(min).is_none() {
                return Err(Error::MinKernel(min.to_string()));
            }
        }
        Ok(profile)
    }

    /// The OCI `linux.seccomp` of a container with capabilities `caps` (`CAP_*` names) on
    /// `host`; None when the profile is empty (no default action, no rules: no filter, as
    /// Docker).
    pub(crate) fn resolve(&self, host: &Host, caps: &[String]) -> Result<Option<Value>, Error> {
        let rules = self.syscalls.as_deref().unwrap_or_default();
        let default_action = self.default_action.as_deref().unwrap_or_default();
        if default_action.is_empty() && rules.is_empty() {
            return Ok(None);
        }
        if self.listener_path.as_deref().is_some_and(|p| !p.is_empty()) {
            return Err(Error::ListenerPath);
        }
        let architectures = match (&self.architectures, &self.arch_map) {
            (Some(a), Some(m)) if !a.is_empty() && !m.is_empty() => {
                return Err(Error::ArchitecturesAndArchMap)
            }
            (Some(a), _) if !a.is_empty() => a.clone(),
            (_, Some(map)) => map
                .iter()
                .find(|m| m.architecture == host.scmp_arch)
                .map(|m| {
                    std::iter::once(m.architecture.clone())
                        .chain(m.sub_architectures.iter().flatten().cloned())
                        .collect()
                })
                .unwrap_or_default(),
            _ => Vec::new(),
        };
        let mut syscalls = Vec::new();
        for rule in rules {
            if !rule.applies(host, caps)? {
                continue;
            }
            if rule.action == "SCMP_ACT_NOTIFY" {
                return Err(Error::Notify);
            }
            let names = match (&rule.name, &rule.names) {
                (Some(n), Some(ns)) if !n.is_empty() && !ns.is_empty() => {
                    return Err(Error::NameAndNames)
                }
                (Some(n), _) if !n.is_empty() => vec![n.clone()],
                (_, Some(ns)) => ns.clone(),
                _ => Vec::new(),
            };
            let mut out = json!({"names": names, "action": rule.action});
            if let Some(e) = rule.errno_ret {
                out["errnoRet"] = e.into();
            }
            if let Some(args) = rule.args.as_deref().filter(|a| !a.is_empty()) {
                out["args"] = args
                    .iter()
                    .map(|a| {
                        json!({"index": a.index, "value": a.value, "valueTwo": a.value_two,
                               "op": a.op})
                    })
                    .collect();
            }
            syscalls.push(out);
        }
        let mut out = json!({
            "defaultAction": default_action,
            "architectures": architectures,
            "syscalls": syscalls,
        });
        if let Some(e) = self.default_errno_ret {
            out["defaultErrnoRet"] = e.into();
        }
        if let Some(flags) = self.flags.as_deref().filter(|f| !f.is_empty()) {
            out["flags"] = json!(flags);
        }
        Ok(Some(out))
    }
}

impl Syscall {
    /// Whether the rule is kept for this host and these capabilities.
    fn applies(&self, host: &Host, caps: &[String]) -> Result<bool, Error> {
        let has = |c: &String| caps.contains(c);
        let on_host = |arches: &[String]| arches.iter().any(|a| *a == host.arch);
        if let Some(ex) = &self.excludes {
            if on_host(ex.arches.as_deref().unwrap_or_default())
                || ex.caps.iter().flatten().any(has)
                || min_kernel_met(ex, host)? == Some(true)
            {
                return Ok(false);
            }
        }
        if let Some(inc) = &self.includes {
            let arches = inc.arches.as_deref().unwrap_or_default();
            if !arches.is_empty() && !on_host(arches)
                || !inc.caps.iter().flatten().all(has)
                || min_kernel_met(inc, host)? == Some(false)
            {
                return Ok(false);
            }
        }
        Ok(true)
    }
}

/// Whether the running kernel is at least the filter's `minKernel`; None without one.
fn min_kernel_met(filter: &Filter, host: &Host) -> Result<Option<bool>, Error> {
    let Some(min) = filter.min_kernel.as_deref().filter(|m| !m.is_empty()) else {
        return Ok(None);
    };
    let min = KernelVersion::parse(min).ok_or_else(|| Error::MinKernel(min.to_string()))?;
    let kernel = host.kernel.ok_or(Error::HostKernel)?;
    Ok(Some(kernel >= min))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(kernel: (u32, u32)) -> Host {
        Host {
            arch: "amd64",
            scmp_arch: "SCMP_ARCH_X86_64",
            kernel: Some(KernelVersion {
                kernel: kernel.0,
                major: kernel.1,
            }),
        }
    }

    fn names(p: &Value) -> Vec<String> {
        p["syscalls"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|r| r["names"].as_array().unwrap().clone())
            .map(|n| n.as_str().unwrap().to_string())
            .collect()
    }

    const PROFILE: &str = r#"{
        "defaultAction": "SCMP_ACT_ERRNO",
        "archMap": [
            {"architecture": "SCMP_ARCH_AARCH64", "subArchitectures": ["SCMP_ARCH_ARM"]},
            {"architecture": "SCMP_ARCH_X86_64", "subArchitectures": ["SCMP_ARCH_X86"]}
        ],
        "syscalls": [
            {"names": ["read"], "action": "SCMP_ACT_ALLOW", "comment": "ignored", "extra": 1},
            {"name": "arm_only", "action": "SCMP_ACT_ALLOW", "includes": {"arches": ["arm64"]}},
            {"names": ["not_amd64"], "action": "SCMP_ACT_ALLOW", "excludes": {"arches": ["amd64"]}},
            {"names": ["admin"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_SYS_ADMIN"]}},
            {"names": ["both"], "action": "SCMP_ACT_ALLOW",
             "includes": {"caps": ["CAP_SYS_ADMIN", "CAP_NET_ADMIN"]}},
            {"names": ["non_admin"], "action": "SCMP_ACT_ALLOW", "excludes": {"caps": ["CAP_SYS_ADMIN"]}},
            {"names": ["new_kernel"], "action": "SCMP_ACT_ALLOW", "includes": {"minKernel": "5.10"}},
            {"names": ["old_kernel"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38,
             "excludes": {"minKernel": "5.10"}}
        ]
    }"#;

    #[test]
    fn includes_and_excludes_select_rules() {
        let p = Profile::parse(PROFILE).unwrap();
        let plain = p.resolve(&host((6, 1)), &[]).unwrap().unwrap();
        assert_eq!(
            plain["architectures"],
            json!(["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"])
        );
        assert_eq!(names(&plain), ["read", "non_admin", "new_kernel"]);
        let admin = vec!["CAP_SYS_ADMIN".to_string()];
        let with_admin = p.resolve(&host((6, 1)), &admin).unwrap().unwrap();
        assert_eq!(names(&with_admin), ["read", "admin", "new_kernel"]);
        let both = vec!["CAP_SYS_ADMIN".to_string(), "CAP_NET_ADMIN".to_string()];
        let with_both = p.resolve(&host((6, 1)), &both).unwrap().unwrap();
        assert_eq!(names(&with_both), ["read", "admin", "both", "new_kernel"]);
        // minKernel compares kernel and major: 5.9 < 5.10 < 6.0.
        let old = p.resolve(&host((5, 9)), &[]).unwrap().unwrap();
        assert_eq!(names(&old), ["read", "non_admin", "old_kernel"]);
        assert_eq!(old["syscalls"][2]["errnoRet"], 38);
        let exact = p.resolve(&host((5, 10)), &[]).unwrap().unwrap();
        assert_eq!(names(&exact), ["read", "non_admin", "new_kernel"]);
    }

    #[test]
    fn what_docker_refuses_is_refused() {
        let cases = [
            (
                r#"{"defaultAction":"SCMP_ACT_ERRNO","architectures":["SCMP_ARCH_X86_64"],
                   "archMap":[{"architecture":"SCMP_ARCH_X86_64"}]}"#,
                "'architectures' and 'archMap'",
            ),
            (
                r#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[
                   {"name":"read","names":["write"],"action":"SCMP_ACT_ALLOW"}]}"#,
                "'name' and 'names'",
            ),
            (
                r#"{"defaultAction":"SCMP_ACT_ERRNO","listenerPath":"/run/agent.sock"}"#,
                "listenerPath",
            ),
            (
                r#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[
                   {"names":["read"],"action":"SCMP_ACT_ALLOW","includes":{"minKernel":"five"}}]}"#,
                "invalid kernel version",
            ),
            // Also in a rule that does not apply here.
            (
                r#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[
                   {"names":["read"],"action":"SCMP_ACT_ALLOW",
                    "includes":{"caps":["CAP_SYS_ADMIN"],"minKernel":"5"}}]}"#,
                "invalid kernel version: 5",
            ),
            (
                r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[
                   {"names":["mkdir"],"action":"SCMP_ACT_NOTIFY"}]}"#,
                "SCMP_ACT_NOTIFY",
            ),
        ];
        for (text, message) in cases {
            let e = Profile::parse(text)
                .and_then(|p| p.resolve(&host((6, 1)), &[]))
                .unwrap_err();
            assert!(e.to_string().contains(message), "{e}");
        }
        let e = Profile::parse(r#"{"defaultAction": 3}"#).unwrap_err();
        assert!(
            e.to_string().starts_with("Decoding seccomp profile failed"),
            "{e}"
        );
    }

    #[test]
    fn empty_profile_is_no_filter_and_fields_carry_over() {
        let p = Profile::parse("{}").unwrap();
        assert!(p.resolve(&host((6, 1)), &[]).unwrap().is_none());
        let p = Profile::parse(
            r#"{"defaultAction":"SCMP_ACT_ERRNO","defaultErrnoRet":38,
                "architectures":["SCMP_ARCH_X86_64"],"flags":["SECCOMP_FILTER_FLAG_LOG"],
                "syscalls":[{"names":["kill"],"action":"SCMP_ACT_ALLOW",
                  "args":[{"index":1,"value":9,"op":"SCMP_CMP_NE"}]}]}"#,
        )
        .unwrap();
        let out = p.resolve(&host((6, 1)), &[]).unwrap().unwrap();
        assert_eq!(out["defaultErrnoRet"], 38);
        assert_eq!(out["flags"], json!(["SECCOMP_FILTER_FLAG_LOG"]));
        assert_eq!(out["architectures"], json!(["SCMP_ARCH_X86_64"]));
        assert_eq!(
            out["syscalls"][0]["args"],
            json!([{"index": 1, "value": 9, "valueTwo": 0, "op": "SCMP_CMP_NE"}])
        );
    }
}
