//! `--user` resolved the way Docker resolves it: names and ids looked up in the container's own
//! `/etc/passwd` and `/etc/group` (read from the mounted root filesystem, never the host's).

use std::path::Path;

use crate::error::{EngineError, Result};

/// A resolved user: ids, and the groups `/etc/group` lists it in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
    /// The home directory `/etc/passwd` gives (`/` without an entry), for `HOME` when the
    /// environment has none (as runc sets it).
    pub home: String,
}

impl User {
    /// Adds `HOME` to `env` unless it sets one.
    pub fn add_home(&self, env: &mut Vec<String>) {
        if !env.iter().any(|e| e.starts_with("HOME=")) {
            env.push(format!("HOME={}", self.home));
        }
    }
}

/// The largest `/etc/passwd` or `/etc/group` read (a real one is a few kB).
const MAX_FILE: u64 = 4 << 20;

/// The container's `file` (`etc/passwd`...), read inside its root: a symlink in the image
/// (`etc -> /etc`, `passwd -> /proc/...`) resolves within the rootfs, never on the host. A
/// missing file reads as empty, as Docker's lookup treats it; one over [`MAX_FILE`] is an
/// error rather than a read of unbounded size.
fn read(rootfs: &Path, file: &str) -> Result<String> {
    match berth_image::inside::read_file(rootfs, file, MAX_FILE) {
        Ok(bytes) => Ok(String::from_utf8_lossy(&bytes).into_owned()),
        Err(e) if e.kind() == std::io::ErrorKind::FileTooLarge => Err(
            EngineError::InvalidParameter(format!("unable to read /{file} of the container: {e}")),
        ),
        Err(_) => Ok(String::new()),
    }
}

/// Resolves `spec` (`""`, `user`, `uid`, `user:group`, `uid:gid`).
pub fn resolve(rootfs: &Path, spec: &str) -> Result<User> {
    let (user, group) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let passwd = read(rootfs, "etc/passwd")?;
    let entry = passwd
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .filter(|f| f.len() >= 4)
        .find(|f| {
            if user.is_empty() {
                f[2] == "0"
            } else {
                f[0] == user || f[2] == user
            }
        });
    let home = entry
        .as_ref()
        .and_then(|f| f.get(5))
        .filter(|h| !h.is_empty())
        .map_or_else(|| "/".to_string(), |h| h.to_string());
    let (uid, gid, name) = match (entry, user.parse::<u32>()) {
        (Some(f), _) => (
            f[2].parse().unwrap_or(0),
            f[3].parse().unwrap_or(0),
            f[0].to_string(),
        ),
        (None, Ok(uid)) => (uid, uid, String::new()),
        (None, Err(_)) if user.is_empty() => (0, 0, "root".to_string()),
        (None, Err(_)) => {
            return Err(EngineError::InvalidParameter(format!(
                "unable to find user {user}: no matching entries in passwd file"
            )))
        }
    };
    let gid = match group {
        Some(g) => resolve_group(rootfs, g)?,
        None => gid,
    };
    let additional_gids = if name.is_empty() {
        Vec::new()
    } else {
        read(rootfs, "etc/group")?
            .lines()
            .map(|l| l.split(':').collect::<Vec<_>>())
            .filter(|f| f.len() >= 4 && f[3].split(',').any(|m| m == name))
            .filter_map(|f| f[2].parse().ok())
            .filter(|g| *g != gid)
            .collect()
    };
    Ok(User {
        uid,
        gid,
        additional_gids,
        home,
    })
}

/// A group name or id.
pub fn resolve_group(rootfs: &Path, group: &str) -> Result<u32> {
    if let Ok(gid) = group.parse() {
        return Ok(gid);
    }
    read(rootfs, "etc/group")?
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.len() >= 3 && f[0] == group)
        .and_then(|f| f[2].parse().ok())
        .ok_or_else(|| {
            EngineError::InvalidParameter(format!(
                "unable to find group {group}: no matching entries in group file"
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_resolve_from_the_rootfs() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("etc")).unwrap();
        std::fs::write(
            dir.path().join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000::/home/user:/bin/sh\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("etc/group"),
            "root:x:0:\nuser:x:1000:\nwheel:x:10:user\n",
        )
        .unwrap();
        let r = |s| resolve(dir.path(), s);
        assert_eq!(r("").unwrap().uid, 0);
        let u = r("user").unwrap();
        assert_eq!(
            (u.uid, u.gid, u.additional_gids.clone()),
            (1000, 1000, vec![10])
        );
        assert_eq!(u.home, "/home/user");
        assert_eq!(r("").unwrap().home, "/root");
        assert_eq!(r("4242").unwrap().home, "/", "no entry: runc's default");
        let mut env = vec!["A=1".to_string()];
        u.add_home(&mut env);
        assert_eq!(env, ["A=1", "HOME=/home/user"]);
        let mut env = vec!["HOME=/x".to_string()];
        u.add_home(&mut env);
        assert_eq!(env, ["HOME=/x"]);
        assert_eq!(r("1000:wheel").unwrap().gid, 10);
        assert_eq!(r("4242").unwrap().uid, 4242);
        assert_eq!(
            r("nobody2").unwrap_err().to_string(),
            "unable to find user nobody2: no matching entries in passwd file"
        );
        assert!(r("user:nogroup").is_err());
    }

    #[test]
    fn an_image_symlink_never_reads_the_hosts_files() {
        // `etc -> /etc` in an image once made `--user root` read the host's /etc/passwd.
        let dir = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink("/etc", dir.path().join("etc")).unwrap();
        assert!(std::fs::read_to_string("/etc/passwd")
            .unwrap()
            .contains("root:"));
        assert_eq!(
            resolve(dir.path(), "root").unwrap_err().to_string(),
            "unable to find user root: no matching entries in passwd file"
        );
        // `etc -> /` means the rootfs's own top.
        let dir = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink("/", dir.path().join("etc")).unwrap();
        std::fs::write(dir.path().join("passwd"), "app:x:7:8::/:/bin/sh\n").unwrap();
        let u = resolve(dir.path(), "app").unwrap();
        assert_eq!((u.uid, u.gid), (7, 8));
    }

    #[test]
    fn a_huge_passwd_is_refused_not_read() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("etc")).unwrap();
        let f = std::fs::File::create(dir.path().join("etc/passwd")).unwrap();
        f.set_len(MAX_FILE + 1).unwrap();
        let err = resolve(dir.path(), "app").unwrap_err().to_string();
        assert!(
            err.starts_with("unable to read /etc/passwd of the container: larger than"),
            "{err}"
        );
    }
}
