//! The default seccomp filter of containers, as `linux.seccomp` of the OCI config.
//!
//! Docker's default profile is an allow-list of about 350 system calls; what it leaves out are
//! the calls that reach kernel features a container must not touch (modules, kexec, the clock,
//! swap, reboot, keyrings, BPF, perf, ptrace-like memory access, new mounts and namespaces, ...).
//! Berth writes the same boundary the other way round: everything is allowed except that list,
//! which fails with `EPERM` (`clone3` with `ENOSYS`, so that libcs fall back to `clone`, whose
//! namespace flags are then filtered by argument). As in Docker, `CAP_SYS_ADMIN` lifts the
//! mount and namespace restrictions (and `CAP_SYS_TIME`, `CAP_SYS_MODULE`, ... their own calls),
//! `--privileged` and `--security-opt seccomp=unconfined` turn the filter off, and
//! `--security-opt seccomp=<file>` loads a profile in Docker's JSON format.

use serde_json::{json, Value};

use crate::error::{EngineError, Result};

/// Denied unless the container has the capability next to them.
const DENIED: &[(&str, Option<&str>)] = &[
    ("acct", Some("CAP_SYS_PACCT")),
    ("add_key", None),
    ("bpf", Some("CAP_BPF")),
    ("clock_adjtime", Some("CAP_SYS_TIME")),
    ("clock_adjtime64", Some("CAP_SYS_TIME")),
    ("clock_settime", Some("CAP_SYS_TIME")),
    ("clock_settime64", Some("CAP_SYS_TIME")),
    ("create_module", Some("CAP_SYS_MODULE")),
    ("delete_module", Some("CAP_SYS_MODULE")),
    ("finit_module", Some("CAP_SYS_MODULE")),
    ("fsconfig", Some("CAP_SYS_ADMIN")),
    ("fsmount", Some("CAP_SYS_ADMIN")),
    ("fsopen", Some("CAP_SYS_ADMIN")),
    ("fspick", Some("CAP_SYS_ADMIN")),
    ("get_kernel_syms", None),
    ("get_mempolicy", Some("CAP_SYS_NICE")),
    ("init_module", Some("CAP_SYS_MODULE")),
    ("ioperm", Some("CAP_SYS_RAWIO")),
    ("iopl", Some("CAP_SYS_RAWIO")),
    ("kcmp", Some("CAP_SYS_PTRACE")),
    ("kexec_file_load", Some("CAP_SYS_BOOT")),
    ("kexec_load", Some("CAP_SYS_BOOT")),
    ("keyctl", None),
    ("lookup_dcookie", Some("CAP_SYS_ADMIN")),
    ("mbind", Some("CAP_SYS_NICE")),
    ("mount", Some("CAP_SYS_ADMIN")),
    ("mount_setattr", Some("CAP_SYS_ADMIN")),
    ("move_mount", Some("CAP_SYS_ADMIN")),
    ("move_pages", Some("CAP_SYS_NICE")),
    ("name_to_handle_at", Some("CAP_DAC_READ_SEARCH")),
    ("nfsservctl", None),
    ("open_by_handle_at", Some("CAP_DAC_READ_SEARCH")),
    ("open_tree", Some("CAP_SYS_ADMIN")),
    ("perf_event_open", Some("CAP_PERFMON")),
    ("pivot_root", Some("CAP_SYS_ADMIN")),
    ("process_vm_readv", Some("CAP_SYS_PTRACE")),
    ("process_vm_writev", Some("CAP_SYS_PTRACE")),
    ("ptrace", Some("CAP_SYS_PTRACE")),
    ("query_module", None),
    ("quotactl", Some("CAP_SYS_ADMIN")),
    ("quotactl_fd", Some("CAP_SYS_ADMIN")),
    ("reboot", Some("CAP_SYS_BOOT")),
    ("request_key", None),
    ("set_mempolicy", Some("CAP_SYS_NICE")),
    ("setns", Some("CAP_SYS_ADMIN")),
    ("settimeofday", Some("CAP_SYS_TIME")),
    ("stime", Some("CAP_SYS_TIME")),
    ("swapoff", Some("CAP_SYS_ADMIN")),
    ("swapon", Some("CAP_SYS_ADMIN")),
    ("syslog", Some("CAP_SYSLOG")),
    ("sysfs", None),
    ("_sysctl", None),
    ("umount", Some("CAP_SYS_ADMIN")),
    ("umount2", Some("CAP_SYS_ADMIN")),
    ("unshare", Some("CAP_SYS_ADMIN")),
    ("uselib", None),
    ("userfaultfd", None),
    ("ustat", None),
    ("vhangup", Some("CAP_SYS_TTY_CONFIG")),
    ("vm86", None),
    ("vm86old", None),
];

/// The namespace flags of clone(2): CLONE_NEWNS | NEWCGROUP | NEWUTS | NEWIPC | NEWUSER |
/// NEWPID | NEWNET | NEWTIME.
const CLONE_NAMESPACES: u64 = 0x0002_0000
    | 0x0200_0000
    | 0x0400_0000
    | 0x0800_0000
    | 0x1000_0000
    | 0x2000_0000
    | 0x4000_0000
    | 0x80;

const EPERM: u32 = 1;
const ENOSYS: u32 = 38;

/// The filter for a container with capabilities `caps`, or None for no filter.
pub fn profile(
    security_opt: &[String],
    privileged: bool,
    caps: &[String],
) -> Result<Option<Value>> {
    let mut custom = None;
    for opt in security_opt {
        let (key, value) = opt.split_once(['=', ':']).unwrap_or((opt, ""));
        if key == "seccomp" {
            if value == "unconfined" {
                return Ok(None);
            }
            custom = Some(value.to_string());
        }
    }
    if let Some(custom) = custom {
        let text = profile_text(&custom)?;
        let docker: Value = serde_json::from_str(&text).map_err(|e| {
            EngineError::InvalidParameter(format!("decoding seccomp profile failed: {e}"))
        })?;
        return Ok(Some(from_docker_profile(&docker)));
    }
    if privileged {
        return Ok(None);
    }
    let has = |cap: &str| caps.iter().any(|c| c == cap);
    let denied: Vec<&str> = DENIED
        .iter()
        .filter(|(_, cap)| cap.is_none_or(|c| !has(c)))
        .map(|(name, _)| *name)
        .collect();
    let mut syscalls = vec![json!({
        "names": denied, "action": "SCMP_ACT_ERRNO", "errnoRet": EPERM,
    })];
    if !has("CAP_SYS_ADMIN") {
        // clone with namespace flags fails; clone3 (whose flags are in memory, out of a
        // filter's reach) reports ENOSYS so that callers use clone.
        // One rule per flag: `(flags & bit) == bit` (MASKED_EQ takes the mask in `value`
        // and the datum in `valueTwo`); rules for one call are alternatives.
        for bit in (0..64)
            .map(|i| 1u64 << i)
            .filter(|b| CLONE_NAMESPACES & b != 0)
        {
            syscalls.push(json!({
                "names": ["clone"], "action": "SCMP_ACT_ERRNO", "errnoRet": EPERM,
                "args": [{"index": 0, "value": bit, "valueTwo": bit, "op": "SCMP_CMP_MASKED_EQ"}],
            }));
        }
        syscalls.push(json!({"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": ENOSYS}));
    }
    Ok(Some(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": syscalls,
    })))
}

/// The largest seccomp profile berthd reads (Docker's default one is about 20 KiB).
const MAX_PROFILE: u64 = 1 << 20;

/// The JSON of a `seccomp=` security option: the profile itself, as the docker CLI sends it
/// (it reads the file named on its command line), or the path of a regular file on the
/// daemon's host, of at most [`MAX_PROFILE`] bytes (a FIFO, `/dev/zero` or a huge file would
/// block or fill berthd).
fn profile_text(value: &str) -> Result<String> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    if value.trim_start().starts_with('{') {
        return Ok(value.to_string());
    }
    let failed = |e: &dyn std::fmt::Display| {
        EngineError::InvalidParameter(format!("opening seccomp profile ({value}) failed: {e}"))
    };
    // Non-blocking: opening a FIFO for reading would wait for a writer.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(value)
        .map_err(|e| failed(&e))?;
    if !file.metadata().map_err(|e| failed(&e))?.is_file() {
        return Err(failed(&"not a regular file"));
    }
    let mut text = String::new();
    file.take(MAX_PROFILE + 1)
        .read_to_string(&mut text)
        .map_err(|e| failed(&e))?;
    if text.len() as u64 > MAX_PROFILE {
        return Err(failed(&format!("larger than {MAX_PROFILE} bytes")));
    }
    Ok(text)
}

/// A profile in Docker's format (`defaultAction`, `architectures` or `archMap`, `syscalls`
/// with `names`/`name`, `action`, `args`, `errnoRet`) as the OCI config takes it.
fn from_docker_profile(p: &Value) -> Value {
    let architectures: Vec<Value> = match p["architectures"].as_array() {
        Some(a) => a.clone(),
        None => p["archMap"]
            .as_array()
            .map(|m| {
                m.iter()
                    .flat_map(|e| {
                        std::iter::once(e["architecture"].clone()).chain(
                            e["subArchitectures"]
                                .as_array()
                                .cloned()
                                .unwrap_or_default(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default(),
    };
    let syscalls: Vec<Value> = p["syscalls"]
        .as_array()
        .map(|list| {
            list.iter()
                .map(|s| {
                    let names = match (&s["names"], &s["name"]) {
                        (Value::Array(n), _) => Value::Array(n.clone()),
                        (_, Value::String(n)) => json!([n]),
                        _ => json!([]),
                    };
                    let mut out = json!({"names": names, "action": s["action"]});
                    for key in ["args", "errnoRet"] {
                        if !s[key].is_null() {
                            out[key] = s[key].clone();
                        }
                    }
                    out
                })
                .collect()
        })
        .unwrap_or_default();
    let mut out = json!({
        "defaultAction": p["defaultAction"],
        "architectures": architectures,
        "syscalls": syscalls,
    });
    if !p["defaultErrnoRet"].is_null() {
        out["defaultErrnoRet"] = p["defaultErrnoRet"].clone();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capabilities_lift_their_calls() {
        let caps = vec!["CAP_CHOWN".to_string()];
        let p = profile(&[], false, &caps).unwrap().unwrap();
        let denied = p["syscalls"][0]["names"].as_array().unwrap();
        assert!(denied.contains(&json!("mount")));
        assert!(denied.contains(&json!("kexec_load")));
        let admin = vec!["CAP_SYS_ADMIN".to_string()];
        let p = profile(&[], false, &admin).unwrap().unwrap();
        let denied = p["syscalls"][0]["names"].as_array().unwrap();
        assert!(!denied.contains(&json!("mount")));
        assert!(denied.contains(&json!("keyctl")));
        assert_eq!(p["syscalls"].as_array().unwrap().len(), 1);
        let p = profile(&[], false, &caps).unwrap().unwrap();
        let clone_rules: Vec<&Value> = p["syscalls"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["names"] == json!(["clone"]))
            .collect();
        assert_eq!(clone_rules.len(), 8);
        assert!(clone_rules
            .iter()
            .all(|r| r["args"][0]["value"] == r["args"][0]["valueTwo"]));
    }

    #[test]
    fn unconfined_privileged_and_files() {
        assert!(profile(&["seccomp=unconfined".into()], false, &[])
            .unwrap()
            .is_none());
        assert!(profile(&[], true, &[]).unwrap().is_none());
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("p.json");
        std::fs::write(
            &file,
            r#"{"defaultAction":"SCMP_ACT_ERRNO","archMap":[{"architecture":"SCMP_ARCH_X86_64","subArchitectures":["SCMP_ARCH_X86"]}],
                "syscalls":[{"names":["read","write"],"action":"SCMP_ACT_ALLOW"}]}"#,
        )
        .unwrap();
        let p = profile(&[format!("seccomp={}", file.display())], false, &[])
            .unwrap()
            .unwrap();
        assert_eq!(
            p["architectures"],
            json!(["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"])
        );
        assert_eq!(p["syscalls"][0]["names"], json!(["read", "write"]));
        assert!(profile(&["seccomp=/nope.json".into()], false, &[]).is_err());
        // The docker CLI sends the profile's content.
        let text = std::fs::read_to_string(&file).unwrap();
        let p = profile(&[format!("seccomp={text}")], false, &[])
            .unwrap()
            .unwrap();
        assert_eq!(p["syscalls"][0]["names"], json!(["read", "write"]));
        // Devices, FIFOs, directories and huge files are refused, not read.
        for path in ["/dev/zero", "/dev/stdin", "/"] {
            assert!(profile(&[format!("seccomp={path}")], false, &[]).is_err());
        }
        let fifo = dir.path().join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        assert!(profile(&[format!("seccomp={}", fifo.display())], false, &[]).is_err());
        let big = dir.path().join("big.json");
        std::fs::write(&big, vec![b' '; (MAX_PROFILE + 1) as usize]).unwrap();
        let e = profile(&[format!("seccomp={}", big.display())], false, &[]).unwrap_err();
        assert!(e.to_string().contains("larger than"), "{e}");
    }
}
