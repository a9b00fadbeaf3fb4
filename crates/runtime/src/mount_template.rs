//! A small mount namespace that containers' mount namespaces are copied from, instead of the
//! host's.
//!
//! A new mount namespace is a copy of its creator's: on a host with a thousand containers the
//! host's holds two thousand mounts (each container's rootfs and network namespace), and copying
//! them, then detaching them all again at `pivot_root`, cost about 8 ms per container start. The
//! template holds a tmpfs root with `/proc` (a proc of the host's pid namespace, for the
//! `/proc/self/fd` paths the init uses), the host's `/sys/fs/cgroup` (the cgroup mounts of a
//! container without a cgroup namespace bind its directories from there) and an empty
//! `/rootfs`, the attach point.
//!
//! The engine makes the template once ([`create`]) and pins it on a file, whose path it gives
//! in the config's [`ANNOTATION`]. Everything the init would reach through a host path after
//! entering it is taken before the fork as a descriptor: the rootfs and each bind mount's source
//! as detached copies (`open_tree`), attached by the init with `move_mount` (the way idmapped
//! mounts already were). Namespaces given by path are joined before the template is entered.
//!
//! Containers that need the host's view stay with a copy of it (the fallback, as before): a
//! user namespace (its root cannot enter a namespace the host's owns), createContainer hooks
//! (their paths are host paths), `--no-pivot`, and a mount namespace joined or inherited.

use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use oci_spec::runtime::Spec;

/// The config annotation naming the pinned template (set by the engine for its own runtime).
pub const ANNOTATION: &str = "io.berth.mount-template";

/// Where the rootfs is attached in a copy of the template.
pub const ROOTFS: &str = "/rootfs";

#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("mount template: {what}: {source}")]
    Sys { what: String, source: nix::Error },
    #[error("mount template: {what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
}

fn sys(what: impl Into<String>) -> impl FnOnce(nix::Error) -> TemplateError {
    let what = what.into();
    move |source| TemplateError::Sys { what, source }
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> TemplateError {
    let what = what.into();
    move |source| TemplateError::Io { what, source }
}

/// What the init of one container takes into the template: the namespace and the detached
/// copy of its rootfs.
#[derive(Debug)]
pub struct Template {
    ns: OwnedFd,
    rootfs: OwnedFd,
}

/// Makes the template and pins it on `pin` (a file, made; a template pinned there before is
/// replaced: containers being made keep the one they opened). `pin` with the extension `root`
/// is left as an empty directory: the template's root was mounted there.
pub fn create(pin: &Path) -> Result<(), TemplateError> {
    let _ = umount2(pin, MntFlags::MNT_DETACH);
    std::fs::write(pin, b"").map_err(io(format!("creating {}", pin.display())))?;
    // unshare(CLONE_NEWNS) changes the calling thread only (it takes a filesystem context of
    // its own): a thread of its own makes the namespace, which is pinned from this one.
    let (made_tx, made_rx) = std::sync::mpsc::channel();
    let (pinned_tx, pinned_rx) = std::sync::mpsc::channel::<()>();
    let base = pin.with_extension("root");
    let thread = std::thread::spawn(move || {
        let made = build(&base).map(|()| nix::unistd::gettid());
        let failed = made.is_err();
        let _ = made_tx.send(made);
        if !failed {
            // Kept alive (its namespace with it) until the pin holds it.
            let _ = pinned_rx.recv();
        }
    });
    let tid = made_rx
        .recv()
        .map_err(|e| io("making it")(std::io::Error::other(e)))??;
    let ns = format!("/proc/self/task/{tid}/ns/mnt");
    let pinned = mount(
        Some(ns.as_str()),
        pin,
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .map_err(sys(format!("pinning it on {}", pin.display())));
    let _ = pinned_tx.send(());
    let _ = thread.join();
    pinned
}

/// In a new mount namespace of the calling thread: a tmpfs mounted on `base` becomes its root,
/// with `/proc`, the host's `/sys/fs/cgroup` and `/rootfs`, and the host's mounts are detached.
/// `base` is left in the host as an empty directory (only this namespace had a mount there).
fn build(base: &Path) -> Result<(), TemplateError> {
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS).map_err(sys("unshare"))?;
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .map_err(sys("making / private"))?;
    std::fs::create_dir_all(base).map_err(io(format!("creating {}", base.display())))?;
    mount(
        Some("tmpfs"),
        base,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        Some("mode=755,size=64k"),
    )
    .map_err(sys("mounting its tmpfs"))?;
    for dir in ["proc", "sys/fs/cgroup", "rootfs"] {
        std::fs::create_dir_all(base.join(dir)).map_err(io(format!("creating /{dir}")))?;
    }
    mount(
        Some("proc"),
        &base.join("proc"),
        Some("proc"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        None::<&str>,
    )
    .map_err(sys("mounting /proc"))?;
    if Path::new("/sys/fs/cgroup").is_dir() {
        mount(
            Some("/sys/fs/cgroup"),
            &base.join("sys/fs/cgroup"),
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None::<&str>,
        )
        .map_err(sys("binding /sys/fs/cgroup"))?;
    }
    nix::unistd::chdir(base).map_err(sys("chdir"))?;
    nix::unistd::pivot_root(".", ".").map_err(sys("pivot_root"))?;
    umount2(".", MntFlags::MNT_DETACH).map_err(sys("detaching the host's mounts"))?;
    nix::unistd::chdir("/").map_err(sys("chdir /"))
}

/// The template for a container with this config, when it can use one: the annotation names
/// it, the container gets a new mount namespace (`new_mount_ns`) and none of the fallback's
/// reasons hold. `None` means the copy of the host's namespace (also when the pin cannot be
/// opened: a template is an optimization).
pub fn for_container(
    spec: &Spec,
    rootfs: &Path,
    new_mount_ns: bool,
    userns: bool,
    no_pivot: bool,
) -> Result<Option<Template>, TemplateError> {
    let Some(pin) = spec.annotations().as_ref().and_then(|a| a.get(ANNOTATION)) else {
        return Ok(None);
    };
    let hooks = spec
        .hooks()
        .as_ref()
        .and_then(|h| h.create_container().as_ref())
        .is_some_and(|h| !h.is_empty());
    if !new_mount_ns || userns || no_pivot || hooks {
        return Ok(None);
    }
    let Ok(ns) = rustix::fs::open(
        pin.as_str(),
        rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    ) else {
        return Ok(None);
    };
    // The pin's file without its mount (unpinned) is an empty file, not a namespace.
    const NSFS_MAGIC: i64 = 0x6e73_6673;
    if !rustix::fs::fstatfs(&ns).is_ok_and(|s| s.f_type == NSFS_MAGIC) {
        return Ok(None);
    }
    let rootfs = detached_copy(rootfs, true)
        .map_err(io(format!("a copy of the rootfs {}", rootfs.display())))?;
    Ok(Some(Template { ns, rootfs }))
}

/// A detached copy of the mount at `source` (and of those below it with `recursive`), for
/// `move_mount`.
pub fn detached_copy(source: &Path, recursive: bool) -> std::io::Result<OwnedFd> {
    use rustix::mount::OpenTreeFlags;
    let mut flags = OpenTreeFlags::OPEN_TREE_CLONE | OpenTreeFlags::OPEN_TREE_CLOEXEC;
    if recursive {
        flags |= OpenTreeFlags::AT_RECURSIVE;
    }
    Ok(rustix::mount::open_tree(rustix::fs::CWD, source, flags)?)
}

impl Template {
    /// In the init: enters a new copy of the template and attaches the rootfs at [`ROOTFS`].
    pub fn enter(&self) -> Result<(), TemplateError> {
        nix::sched::setns(self.ns.as_fd(), nix::sched::CloneFlags::CLONE_NEWNS)
            .map_err(sys("entering"))?;
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS).map_err(sys("copying"))?;
        use rustix::mount::MoveMountFlags;
        rustix::mount::move_mount(
            &self.rootfs,
            "",
            rustix::fs::CWD,
            ROOTFS,
            MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
        )
        .map_err(|e| io("attaching the rootfs")(e.into()))
    }
}
