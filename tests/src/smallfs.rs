//! Small filesystems to fill, for the tests of what Berth does on a full disk: a tmpfs with a
//! size limit, or an ext4 or btrfs image on a loop device (`truncate`, `mkfs.ext4 -F` /
//! `mkfs.btrfs`, `mount -o loop`), mounted on a directory of their own and unmounted and removed
//! by `Drop` (which frees the loop device), also when the test fails. All need root; ext4 needs
//! `mkfs.ext4` (e2fsprogs), btrfs `mkfs.btrfs` (btrfs-progs).
//!
//! [`SmallFs::fill`] writes a file until the filesystem refuses even one byte (as root, ext4's
//! reserved blocks are written too), [`SmallFs::unfill`] removes it.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// A mounted small filesystem; see the module doc.
pub struct SmallFs {
    /// Holds the mount point (and the ext4 image); removed after the unmount.
    _dir: tempfile::TempDir,
    mount: PathBuf,
    fillers: Vec<PathBuf>,
}

/// Why a small filesystem cannot be made here (not root, no `mkfs.ext4`), if it cannot.
pub fn missing_prerequisite(ext4: bool) -> Option<String> {
    if !nix::unistd::Uid::effective().is_root() {
        return Some("mounting a small filesystem needs root".into());
    }
    if ext4 && !Path::new("/usr/sbin/mkfs.ext4").exists() && !Path::new("/sbin/mkfs.ext4").exists()
    {
        return Some("mkfs.ext4 is missing: apt-get install e2fsprogs".into());
    }
    None
}

/// Whether a test that needs a small filesystem must stop here: prints `skipped: REASON` when a
/// prerequisite is missing; under `CI=true` a missing prerequisite is a failure instead.
pub fn skip(ext4: bool) -> bool {
    let Some(reason) = missing_prerequisite(ext4) else {
        return false;
    };
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "CI=true and a prerequisite is missing: {reason}"
    );
    eprintln!("skipped: {reason}");
    true
}

/// Why a btrfs cannot be made here (not root, no `mkfs.btrfs`), if it cannot.
pub fn missing_btrfs() -> Option<String> {
    if let Some(reason) = missing_prerequisite(false) {
        return Some(reason);
    }
    if !Path::new("/usr/sbin/mkfs.btrfs").exists() && !Path::new("/sbin/mkfs.btrfs").exists() {
        return Some("mkfs.btrfs is missing: apt-get install btrfs-progs".into());
    }
    None
}

/// [`skip`], for a test that needs a btrfs ([`SmallFs::btrfs`]).
pub fn skip_btrfs() -> bool {
    let Some(reason) = missing_btrfs() else {
        return false;
    };
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "CI=true and a prerequisite is missing: {reason}"
    );
    eprintln!("skipped: {reason}");
    true
}

impl SmallFs {
    /// A tmpfs of `bytes` (rounded up to pages by the kernel).
    pub fn tmpfs(bytes: u64) -> std::io::Result<SmallFs> {
        let dir = tempfile::tempdir()?;
        let mount = dir.path().join("mnt");
        fs::create_dir(&mount)?;
        let data = format!("size={bytes},mode=0755");
        nix::mount::mount(
            Some("tmpfs"),
            &mount,
            Some("tmpfs"),
            nix::mount::MsFlags::empty(),
            Some(data.as_str()),
        )?;
        Ok(SmallFs {
            _dir: dir,
            mount,
            fillers: Vec::new(),
        })
    }

    /// An ext4 filesystem of `megabytes` in an image file on a loop device.
    pub fn ext4(megabytes: u64) -> std::io::Result<SmallFs> {
        // The image lives on the host's disk (not in /run, a tmpfs on most machines).
        let dir = tempfile::Builder::new()
            .prefix("berth-smallfs-")
            .tempdir_in("/var/tmp")?;
        let image = dir.path().join("fs.img");
        let mount = dir.path().join("mnt");
        fs::create_dir(&mount)?;
        fs::File::create(&image)?.set_len(megabytes << 20)?;
        run(Command::new("mkfs.ext4").args(["-F", "-q"]).arg(&image))?;
        run(Command::new("mount")
            .args(["-o", "loop"])
            .arg(&image)
            .arg(&mount))?;
        Ok(SmallFs {
            _dir: dir,
            mount,
            fillers: Vec::new(),
        })
    }

    /// A btrfs of `megabytes` in an image file on a loop device, with data and metadata mixed
    /// (`mkfs.btrfs --mixed`, as for small filesystems: filling it leaves no room for metadata
    /// either, as on a full disk).
    pub fn btrfs(megabytes: u64) -> std::io::Result<SmallFs> {
        let dir = tempfile::Builder::new()
            .prefix("berth-smallfs-")
            .tempdir_in("/var/tmp")?;
        let image = dir.path().join("fs.img");
        let mount = dir.path().join("mnt");
        fs::create_dir(&mount)?;
        fs::File::create(&image)?.set_len(megabytes << 20)?;
        run(Command::new("mkfs.btrfs")
            .args(["-q", "-f", "--mixed"])
            .arg(&image))?;
        run(Command::new("mount")
            .args(["-o", "loop"])
            .arg(&image)
            .arg(&mount))?;
        Ok(SmallFs {
            _dir: dir,
            mount,
            fillers: Vec::new(),
        })
    }

    /// The mount point.
    pub fn path(&self) -> &Path {
        &self.mount
    }

    /// Bytes free (for root) on the filesystem.
    pub fn free(&self) -> u64 {
        nix::sys::statvfs::statvfs(&self.mount)
            .map(|s| s.blocks_free() * s.fragment_size())
            .unwrap_or(0)
    }

    /// Writes a new filler file until not one more byte fits, and syncs it. Returns its size.
    pub fn fill(&mut self) -> std::io::Result<u64> {
        let path = self.mount.join(format!(".filler-{}", self.fillers.len()));
        let mut file = fs::File::create(&path)?;
        self.fillers.push(path);
        let mut written = 0u64;
        let mut chunk = 1usize << 20;
        let zeros = vec![0x5au8; chunk];
        while chunk > 0 {
            match file.write(&zeros[..chunk]) {
                Ok(0) => chunk /= 2,
                Ok(n) => written += n as u64,
                Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => chunk /= 2,
                Err(e) => return Err(e),
            }
        }
        // Delayed allocation may only find out now; what the sync refuses is not there.
        let _ = file.sync_all();
        Ok(written)
    }

    /// Removes the filler files.
    pub fn unfill(&mut self) {
        for path in self.fillers.drain(..) {
            let _ = fs::remove_file(path);
        }
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        self.unfill();
        // Whatever a failed test left mounted below, deepest first, then the filesystem.
        let prefix = format!("{}/", self.mount.display());
        let mounts = fs::read_to_string("/proc/self/mounts").unwrap_or_default();
        let mut points: Vec<&str> = mounts
            .lines()
            .filter_map(|l| l.split_whitespace().nth(1))
            .filter(|p| p.starts_with(&prefix))
            .collect();
        points.sort_by_key(|p| std::cmp::Reverse(p.len()));
        for p in points {
            let _ = nix::mount::umount2(p, nix::mount::MntFlags::MNT_DETACH);
        }
        // umount(8) also frees the loop device of a `mount -o loop`.
        let unmounted = Command::new("umount")
            .arg(&self.mount)
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !unmounted {
            let _ = nix::mount::umount2(&self.mount, nix::mount::MntFlags::MNT_DETACH);
        }
    }
}

fn run(cmd: &mut Command) -> std::io::Result<()> {
    let out = cmd.stdin(Stdio::null()).output()?;
    if out.status.success() {
        return Ok(());
    }
    Err(std::io::Error::other(format!(
        "{cmd:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )))
}
