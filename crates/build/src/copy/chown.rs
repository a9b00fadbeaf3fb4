//! `--chown=user[:group]`, resolved against the destination root's `/etc/passwd` and
//! `/etc/group`, read inside that root (a symlinked `etc` resolves inside it too, never to the
//! host's files). As BuildKit: a numeric user without a group gives gid = uid; a user name
//! without a group gives the user's primary group.

use std::io::Read;
use std::os::fd::BorrowedFd;
use std::path::Path;

use rustix::fs::OFlags;

use super::CopyError;
use crate::fsops;

/// Larger passwd or group files are not read.
const MAX_DB_SIZE: u64 = 8 << 20;

/// The uid and gid `spec` names inside the root `top`.
pub(crate) fn resolve(top: BorrowedFd<'_>, spec: &str) -> Result<(u32, u32), CopyError> {
    let fail = |what: String| CopyError::Chown(what);
    let (user, group) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    if user.is_empty() || group.is_some_and(|g| g.is_empty() || g.contains(':')) {
        return Err(fail(format!("invalid chown string format: {spec}")));
    }
    let (uid, primary_gid) = match user.parse::<u32>() {
        Ok(uid) => (uid, uid),
        Err(_) => {
            let passwd = read_db(top, "etc/passwd");
            lookup(&passwd, user, 2)
                .and_then(|fields| {
                    Some((fields.first()?.parse().ok()?, fields.get(1)?.parse().ok()?))
                })
                .ok_or_else(|| {
                    fail(format!(
                        "unable to find user {user}: no matching entries in passwd file"
                    ))
                })?
        }
    };
    let gid = match group {
        None => primary_gid,
        Some(g) => match g.parse::<u32>() {
            Ok(gid) => gid,
            Err(_) => {
                let groups = read_db(top, "etc/group");
                lookup(&groups, g, 2)
                    .and_then(|fields| fields.first()?.parse().ok())
                    .ok_or_else(|| {
                        fail(format!(
                            "unable to find group {g}: no matching entries in group file"
                        ))
                    })?
            }
        },
    };
    Ok((uid, gid))
}

/// A passwd/group file inside the root; missing or unreadable is empty.
fn read_db(top: BorrowedFd<'_>, rel: &str) -> String {
    let Ok(fd) = fsops::open_at(top, Path::new(rel), OFlags::RDONLY | OFlags::NONBLOCK) else {
        return String::new();
    };
    let file = std::fs::File::from(fd);
    if !file.metadata().is_ok_and(|m| m.is_file()) {
        return String::new();
    }
    let mut data = Vec::new();
    if file.take(MAX_DB_SIZE).read_to_end(&mut data).is_err() {
        return String::new();
    }
    String::from_utf8_lossy(&data).into_owned()
}

/// The fields after the `skip`th of the first line whose first field is `name`.
fn lookup<'a>(db: &'a str, name: &str, skip: usize) -> Option<Vec<&'a str>> {
    db.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|fields| fields.first() == Some(&name))
        .map(|fields| fields.into_iter().skip(skip).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::fd::AsFd;

    fn root_with_db() -> tempfile::TempDir {
        let tmp = tempfile::tempdir().unwrap();
        fs::create_dir(tmp.path().join("etc")).unwrap();
        fs::write(
            tmp.path().join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\n# comment\napp:x:1001:1002::/home/app:/bin/sh\n",
        )
        .unwrap();
        fs::write(tmp.path().join("etc/group"), "root:x:0:\nstaff:x:50:app\n").unwrap();
        tmp
    }

    fn chown(root: &Path, spec: &str) -> Result<(u32, u32), String> {
        let top = fsops::open_top(root).unwrap();
        resolve(top.as_fd(), spec).map_err(|e| e.to_string())
    }

    #[test]
    fn names_and_ids() {
        let t = root_with_db();
        let r = t.path();
        assert_eq!(chown(r, "app"), Ok((1001, 1002)));
        assert_eq!(chown(r, "app:staff"), Ok((1001, 50)));
        assert_eq!(chown(r, "10"), Ok((10, 10)));
        assert_eq!(chown(r, "10:20"), Ok((10, 20)));
        assert_eq!(chown(r, "app:7"), Ok((1001, 7)));
        assert_eq!(
            chown(r, "nobody"),
            Err("unable to convert uid/gid chown string to host mapping: unable to find user nobody: no matching entries in passwd file".into())
        );
        assert_eq!(
            chown(r, "app:wheel"),
            Err("unable to convert uid/gid chown string to host mapping: unable to find group wheel: no matching entries in group file".into())
        );
        assert!(chown(r, "a:b:c").is_err());
        assert!(chown(r, ":b").is_err());
    }

    #[test]
    fn a_symlinked_etc_never_reads_the_host() {
        // The host has root in /etc/passwd; the image does not.
        assert!(fs::read_to_string("/etc/passwd")
            .unwrap()
            .starts_with("root:"));
        for target in ["/etc", "../../../../../../etc", "/proc/self/root/etc"] {
            let tmp = tempfile::tempdir().unwrap();
            std::os::unix::fs::symlink(target, tmp.path().join("etc")).unwrap();
            assert!(
                chown(tmp.path(), "root").is_err(),
                "{target}: the host's passwd was read"
            );
            assert!(chown(tmp.path(), "0:root").is_err(), "{target}: host group");
        }
    }
}
