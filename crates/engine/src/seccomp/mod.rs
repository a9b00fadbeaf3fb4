//! The seccomp filter of containers, as `linux.seccomp` of the OCI config.
//!
//! As dockerd: the default is an allow-list, Docker's default profile (`default.json`, in
//! Docker's profile format): every syscall not named fails with `EPERM`; rules `includes` and
//! `excludes` by capability, architecture and kernel version add the calls a capability needs
//! (`--cap-add SYS_ADMIN` brings mount, unshare, setns..., `SYS_PTRACE` pidfd_getfd and
//! process_madvise, `SYS_TIME` settimeofday...); `personality` is allowed with a few values,
//! `clone` without namespace flags (unless `CAP_SYS_ADMIN`), `clone3` fails with `ENOSYS` so
//! that libcs use clone, `socket` with every family but `AF_VSOCK`. Syscalls newer than every
//! one the profile names fail with `ENOSYS` (the stub berth-seccomp puts in front of refusing
//! filters), so that libcs fall back to older ones.
//!
//! `--privileged` and `--security-opt seccomp=unconfined` mean no filter; `seccomp=builtin` the
//! built-in profile; `seccomp=<profile>` a profile in Docker's format (the docker CLI sends the
//! file's content; a path on the daemon's host is read too). berthd's `--seccomp-profile`
//! (`builtin`, `unconfined` or a file) sets what containers without a `seccomp=` option get.

mod docker;
mod host;

use std::path::PathBuf;
use std::sync::OnceLock;

use oci_spec::runtime::LinuxSeccomp;

use crate::error::EngineError;
use docker::Profile;
use host::Host;

/// The built-in profile.
const BUILTIN: &str = include_str!("default.json");

/// The largest seccomp profile berthd reads (Docker's default one is about 20 KiB).
const MAX_PROFILE: u64 = 1 << 20;

/// What is wrong with a seccomp profile, in Docker's words where Docker has some.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Decoding seccomp profile failed: {0}")]
    Decode(String),
    #[error(
        "'architectures' and 'archMap' were specified in the seccomp profile, use either \
         'architectures' or 'archMap'"
    )]
    ArchitecturesAndArchMap,
    #[error(
        "'name' and 'names' were specified in the seccomp profile, use either 'name' or 'names'"
    )]
    NameAndNames,
    #[error(
        "seccomp profile: listenerPath is not supported: berthd hands no seccomp listener to an \
         agent (remove listenerPath and SCMP_ACT_NOTIFY rules)"
    )]
    ListenerPath,
    #[error(
        "seccomp profile: SCMP_ACT_NOTIFY is not supported: berthd hands no seccomp listener to \
         an agent"
    )]
    Notify,
    #[error("invalid kernel version: {0}, expected \"<kernel>.<major>\"")]
    MinKernel(String),
    #[error("seccomp profile: minKernel: the running kernel's version is unreadable")]
    HostKernel,
    #[error("opening seccomp profile ({path}) failed: {reason}")]
    Open { path: String, reason: String },
    #[error("invalid seccomp profile: {0}")]
    Invalid(String),
}

impl From<Error> for EngineError {
    fn from(e: Error) -> EngineError {
        EngineError::InvalidParameter(e.to_string())
    }
}

/// What containers without a `seccomp=` security option get (berthd's `--seccomp-profile`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum DaemonProfile {
    /// The built-in profile (`builtin`, the default).
    #[default]
    Builtin,
    /// No filter (`unconfined`).
    Unconfined,
    /// A profile file, read when berthd starts (as dockerd).
    Custom {
        /// Where it was read from, for `docker info`.
        path: PathBuf,
        /// Its JSON.
        text: String,
    },
}

impl DaemonProfile {
    /// The profile of `--seccomp-profile VALUE`: `builtin` (or empty), `unconfined`, or a
    /// file, read and checked now.
    pub fn from_flag(value: &str) -> Result<DaemonProfile, Error> {
        Ok(match value {
            "" | "builtin" => DaemonProfile::Builtin,
            "unconfined" => DaemonProfile::Unconfined,
            path => {
                let text = read_profile(path)?;
                // Checked once for a container without capabilities; what depends on them
                // can only be checked per container.
                resolve(&Profile::parse(&text)?, Host::current(), &[])?;
                DaemonProfile::Custom {
                    path: PathBuf::from(path),
                    text,
                }
            }
        })
    }

    /// The profile's name in `docker info`'s security options (`name=seccomp,profile=NAME`).
    pub fn name(&self) -> String {
        match self {
            DaemonProfile::Builtin => "builtin".into(),
            DaemonProfile::Unconfined => "unconfined".into(),
            DaemonProfile::Custom { path, .. } => path.display().to_string(),
        }
    }
}

/// The filter of a container with capabilities `caps` (`CAP_*`), or None for no filter.
pub fn profile(
    security_opt: &[String],
    privileged: bool,
    caps: &[String],
    daemon: &DaemonProfile,
) -> Result<Option<LinuxSeccomp>, EngineError> {
    if privileged {
        return Ok(None);
    }
    let mut chosen = None;
    for opt in security_opt {
        let (key, value) = opt.split_once(['=', ':']).unwrap_or((opt, ""));
        if key == "seccomp" {
            chosen = Some(value);
        }
    }
    let parsed;
    let profile = match chosen {
        Some("unconfined") => return Ok(None),
        Some("builtin") => builtin()?,
        Some(value) => {
            parsed = Profile::parse(&profile_text(value)?)?;
            &parsed
        }
        None => match daemon {
            DaemonProfile::Unconfined => return Ok(None),
            DaemonProfile::Builtin => builtin()?,
            DaemonProfile::Custom { text, .. } => {
                parsed = Profile::parse(text)?;
                &parsed
            }
        },
    };
    Ok(resolve(profile, Host::current(), caps)?)
}

/// The built-in profile, decoded once (not at each container start).
fn builtin() -> Result<&'static Profile, Error> {
    static DECODED: OnceLock<Profile> = OnceLock::new();
    if let Some(p) = DECODED.get() {
        return Ok(p);
    }
    let p = Profile::parse(BUILTIN)?;
    Ok(DECODED.get_or_init(|| p))
}

/// The OCI filter of the Docker profile `profile` for `caps` on `host`, checked as the runtime
/// will read it (actions, operators, architectures and flags by their names).
fn resolve(profile: &Profile, host: &Host, caps: &[String]) -> Result<Option<LinuxSeccomp>, Error> {
    profile
        .resolve(host, caps)?
        .map(|v| serde_json::from_value(v).map_err(|e| Error::Invalid(e.to_string())))
        .transpose()
}

/// The JSON of a `seccomp=` security option: the profile itself, as the docker CLI sends it
/// (it reads the file named on its command line), or the path of a file on the daemon's host.
fn profile_text(value: &str) -> Result<String, Error> {
    if value.trim_start().starts_with('{') {
        return Ok(value.to_string());
    }
    read_profile(value)
}

/// Reads a profile file: a regular file of at most [`MAX_PROFILE`] bytes (a FIFO, `/dev/zero`
/// or a huge file would block or fill berthd).
fn read_profile(path: &str) -> Result<String, Error> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let failed = |e: &dyn std::fmt::Display| Error::Open {
        path: path.to_string(),
        reason: e.to_string(),
    };
    // Non-blocking: opening a FIFO for reading would wait for a writer.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
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

#[cfg(test)]
mod tests;
