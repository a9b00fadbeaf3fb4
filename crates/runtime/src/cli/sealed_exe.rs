//! Protection of the runtime binary against the container (the CVE-2019-5736 class).
//!
//! A container whose program is a script starting with `#!/proc/self/exe` makes the kernel run the
//! runtime's own binary inside the container; a process of the container could then open it
//! through `/proc/PID/exe` and, once it exits, write to it, replacing the host's runtime. So
//! before `create`, `run` and `exec` the runtime re-executes itself from a sealed memfd copy
//! (F_SEAL_WRITE, SHRINK, GROW, SEAL): what `/proc/PID/exe` then reaches cannot be written.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;

use anyhow::{Context, Result};
use rustix::fs::{MemfdFlags, SealFlags};

const MEMFD_NAME: &str = "berth-runtime";

/// Returns if the process already runs from the sealed copy; else re-executes from one and
/// does not return.
pub fn ensure() -> Result<()> {
    let exe = std::fs::read_link("/proc/self/exe").context("reading /proc/self/exe")?;
    if exe
        .as_os_str()
        .as_bytes()
        .starts_with(format!("/memfd:{MEMFD_NAME}").as_bytes())
    {
        return Ok(());
    }
    let mut source = std::fs::File::open("/proc/self/exe").context("opening /proc/self/exe")?;
    let memfd =
        rustix::fs::memfd_create(MEMFD_NAME, MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING)
            .context("memfd_create")?;
    let mut copy = std::fs::File::from(memfd);
    std::io::copy(&mut source, &mut copy).context("copying the runtime binary")?;
    rustix::fs::fcntl_add_seals(
        &copy,
        SealFlags::SEAL | SealFlags::SHRINK | SealFlags::GROW | SealFlags::WRITE,
    )
    .context("sealing the runtime's copy")?;
    let to_c = |s: &std::ffi::OsStr| CString::new(s.as_bytes()).context("argument with NUL");
    let args: Vec<CString> = std::env::args_os()
        .map(|a| to_c(&a))
        .collect::<Result<_>>()?;
    let env: Vec<CString> = std::env::vars_os()
        .map(|(k, v)| {
            let mut kv = k;
            kv.push("=");
            kv.push(v);
            to_c(&kv)
        })
        .collect::<Result<_>>()?;
    let err = nix::unistd::fexecve(&copy, &args, &env).err();
    Err(anyhow::anyhow!(
        "re-executing from the sealed copy: {err:?}"
    ))
}
