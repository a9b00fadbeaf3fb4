//! Network namespaces the engine makes for containers (Docker's sandbox): a new namespace with
//! its loopback up, kept alive by a bind mount on a file under the exec root, and joined by
//! the runtime through the config's namespace `path`. Networks (issue 5) plug into it between
//! create and start.

use std::io;
use std::os::fd::AsRawFd;
use std::path::Path;

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{unshare, CloneFlags};

/// A network namespace pinned at a path (a new empty file), with `lo` up, being made on a thread
/// of its own (unshare(CLONE_NEWNET) changes only the calling thread) while the caller goes on;
/// waited for by [`Creating::wait`] or on drop.
#[derive(Debug)]
pub struct Creating {
    thread: Option<std::thread::JoinHandle<io::Result<()>>>,
}

impl Creating {
    pub fn start(path: &Path) -> Creating {
        let target = path.to_path_buf();
        let thread = std::thread::spawn(move || -> io::Result<()> {
            std::fs::File::create(&target)?;
            let made = unshare(CloneFlags::CLONE_NEWNET)
                .map_err(io::Error::from)
                .and_then(|()| loopback_up())
                .and_then(|()| {
                    mount(
                        Some("/proc/thread-self/ns/net"),
                        &target,
                        None::<&str>,
                        MsFlags::MS_BIND,
                        None::<&str>,
                    )
                    .map_err(io::Error::from)
                });
            if made.is_err() {
                let _ = std::fs::remove_file(&target);
            }
            made
        });
        Creating {
            thread: Some(thread),
        }
    }

    /// Waits for the namespace.
    pub fn wait(mut self) -> io::Result<()> {
        self.join()
    }

    fn join(&mut self) -> io::Result<()> {
        match self.thread.take() {
            Some(t) => t
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("the netns thread panicked"))),
            None => Ok(()),
        }
    }
}

impl Drop for Creating {
    fn drop(&mut self) {
        let _ = self.join();
    }
}

/// Unpins and removes the namespace at `path` (gone once no process is in it).
pub fn remove(path: &Path) -> io::Result<()> {
    match umount2(path, MntFlags::MNT_DETACH) {
        Ok(()) | Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => {}
        Err(e) => return Err(e.into()),
    }
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Sets IFF_UP on `lo` in the calling thread's network namespace.
fn loopback_up() -> io::Result<()> {
    let sock = rustix::net::socket_with(
        rustix::net::AddressFamily::INET,
        rustix::net::SocketType::DGRAM,
        rustix::net::SocketFlags::CLOEXEC,
        None,
    )?;
    // SAFETY: ifreq is plain old data; all-zero is a valid value (empty name, no flags).
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(b"lo\0") {
        *dst = *src as libc::c_char;
    }
    // SAFETY: SIOCGIFFLAGS reads ifr_name and writes ifr_flags of the ifreq we own, which lives
    // across the call; the socket fd is open.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel filled the flags member of the union just above.
    unsafe { req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short };
    // SAFETY: SIOCSIFFLAGS reads the ifreq we own; the socket fd is open.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
