#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions unwrap too
//! Compiled seccomp programs are cached under the runtime's state root
//! (`<exec-root>/runtime/@seccomp-cache`), end to end: the first container with the default
//! profile stores its program, the next start and an exec read it (the entry stays the same
//! file), and a corrupt entry is compiled again and rewritten while the container still gets
//! Docker's filter (`unshare(CLONE_NEWUSER)` fails with EPERM).

mod common;

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use common::*;

/// `unshare -U`: refused by Docker's default profile without CAP_SYS_ADMIN.
const USERNS: &[&str] = &["unshare", "-U", "-r", "id", "-u"];

/// The cache's entries (files named by 64 hex digits), and whatever else is in it.
fn entries(dir: &Path) -> (Vec<PathBuf>, Vec<String>) {
    let mut entries = Vec::new();
    let mut others = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        let name = e.file_name().into_string().unwrap();
        if name.len() == 64 && name.bytes().all(|b| b.is_ascii_hexdigit()) {
            entries.push(e.path());
        } else {
            others.push(name);
        }
    }
    (entries, others)
}

/// Runs `unshare -U` in a default container: it must fail with EPERM from the filter.
fn userns_refused(d: &Daemon, args: &[&str]) {
    let out = d.docker(&[args, USERNS].concat());
    let (stdout, stderr) = text(&out);
    assert_ne!(out.status.code(), Some(0), "{stdout}{stderr}");
    assert!(
        stderr.contains("Operation not permitted"),
        "stdout: {stdout}\nstderr: {stderr}"
    );
}

#[test]
fn the_default_profile_is_compiled_once_and_read_back() {
    if skip() {
        return;
    }
    let d = Daemon::start();
    d.busybox("bb:local");
    let cache = d.dir.join("run").join("runtime").join("@seccomp-cache");

    // First start: compiled and stored, in a root-only directory.
    assert_eq!(d.ok(&["run", "--rm", "bb:local", "echo", "ok"]), "ok\n");
    let meta = std::fs::symlink_metadata(&cache).unwrap();
    assert!(meta.is_dir());
    assert_eq!(meta.mode() & 0o777, 0o700);
    assert_eq!(meta.uid(), 0);
    let (list, others) = entries(&cache);
    assert_eq!(list.len(), 1, "{list:?} {others:?}");
    assert!(others.is_empty(), "{others:?}");
    let entry = list[0].clone();
    let stored = std::fs::read(&entry).unwrap();
    assert!(stored.starts_with(b"BERTHBPF"));
    let inode = std::fs::metadata(&entry).unwrap().ino();

    // Second start and an exec: the same entry is read (a new one would be a new file), and
    // the filter holds.
    userns_refused(&d, &["run", "--rm", "bb:local"]);
    d.ok(&["run", "-d", "--name", "cached", "bb:local", "sleep", "60"]);
    userns_refused(&d, &["exec", "cached"]);
    assert_eq!(d.ok(&["exec", "cached", "echo", "in"]), "in\n");
    d.ok(&["rm", "-f", "cached"]);
    let (list, others) = entries(&cache);
    assert_eq!(list, std::slice::from_ref(&entry), "{others:?}");
    assert_eq!(std::fs::metadata(&entry).unwrap().ino(), inode);
    assert_eq!(std::fs::read(&entry).unwrap(), stored);

    // Corrupt entries: compiled again, the container still filtered, the entry rewritten.
    let mut flipped = stored.clone();
    let last = flipped.len() - 1;
    flipped[last] ^= 0xff;
    for bad in [
        Vec::new(),
        stored[..stored.len() / 2].to_vec(),
        flipped,
        vec![0u8; 4096],
    ] {
        std::fs::write(&entry, &bad).unwrap();
        userns_refused(&d, &["run", "--rm", "bb:local"]);
        assert_eq!(std::fs::read(&entry).unwrap(), stored);
    }

    // seccomp=unconfined compiles nothing; another profile gets an entry of its own.
    assert_eq!(
        d.ok(&[
            &[
                "run",
                "--rm",
                "--security-opt",
                "seccomp=unconfined",
                "bb:local"
            ][..],
            USERNS
        ]
        .concat()),
        "0\n"
    );
    assert_eq!(entries(&cache).0.len(), 1);
    d.ok(&["run", "--rm", "--cap-add", "SYS_ADMIN", "bb:local", "true"]);
    assert_eq!(entries(&cache).0.len(), 2);
    let (_, others) = entries(&cache);
    assert!(others.is_empty(), "{others:?}");
}
