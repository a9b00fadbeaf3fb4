#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions unwrap too

//! `docker cp` and the archive endpoints as dockerd answers them: a stopped container's
//! volumes and binds are seen (and written), an entry that leads out of the destination is
//! refused with dockerd's words, and a PUT that fails half-way (a bad entry, a full disk)
//! leaves nothing behind.

mod common;

use std::path::Path;
use std::process::Command;

use common::{skip, text, Daemon};

/// A tar of `(name, content)` pairs, the names written as given (`../` and `/` kept: the
/// tar crate's own path setters refuse them).
fn tar_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, content) in entries {
        let mut h = tar::Header::new_old();
        let field = &mut h.as_old_mut().name;
        field[..name.len()].copy_from_slice(name.as_bytes());
        h.set_size(content.len() as u64);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        h.set_cksum();
        b.append(&h, *content).unwrap();
    }
    b.into_inner().unwrap()
}

/// A tar of one hard link `name` to `target`, written as given.
fn hardlink_tar(name: &str, target: &str) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_old();
    h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
    h.as_old_mut().linkname[..target.len()].copy_from_slice(target.as_bytes());
    h.set_size(0);
    h.set_mode(0o644);
    h.set_entry_type(tar::EntryType::Link);
    h.set_cksum();
    b.append(&h, &[][..]).unwrap();
    b.into_inner().unwrap()
}

/// The file `path` of `container` through `docker cp CONTAINER:PATH -` (a tar), unpacked.
fn cp_out(d: &Daemon, container: &str, path: &str) -> Option<Vec<u8>> {
    let out = d.docker(&["cp", &format!("{container}:{path}"), "-"]);
    if !out.status.success() {
        return None;
    }
    let mut archive = tar::Archive::new(&out.stdout[..]);
    let mut entry = archive.entries().unwrap().next()?.unwrap();
    let mut data = Vec::new();
    std::io::Read::read_to_end(&mut entry, &mut data).unwrap();
    Some(data)
}

#[test]
fn docker_cp_of_a_stopped_container_sees_its_volumes_and_binds() {
    if skip() {
        return;
    }
    let d = Daemon::start();
    d.busybox("bb:local");
    let host = d.dir.join("hostdir");
    std::fs::create_dir_all(&host).unwrap();
    std::fs::write(host.join("b.txt"), "from the host\n").unwrap();
    let bind = format!("{}:/bind", host.display());
    let ro = format!("{}:/robind:ro", host.display());
    d.ok(&[
        "run",
        "--rm",
        "-v",
        "vol1:/vol1",
        "bb:local",
        "sh",
        "-c",
        "echo in the volume > /vol1/f",
    ]);
    d.ok(&[
        "create",
        "--name",
        "cc",
        "-v",
        "vol1:/vol1",
        "-v",
        &bind,
        "-v",
        &ro,
        "bb:local",
        "true",
    ]);
    let mounts_before = d.mounts_under();

    // Out of it: the volume's and the bind's files (404 today: the bare rootfs).
    assert_eq!(
        cp_out(&d, "cc", "/vol1/f").as_deref(),
        Some(&b"in the volume\n"[..])
    );
    assert_eq!(
        cp_out(&d, "cc", "/bind/b.txt").as_deref(),
        Some(&b"from the host\n"[..])
    );
    let stat = d.docker(&["cp", "cc:/vol1", "-"]);
    assert!(stat.status.success(), "{:?}", text(&stat));

    // Into it: the file lands in the volume and in the bind's directory.
    let src = d.dir.join("new.txt");
    std::fs::write(&src, "copied in\n").unwrap();
    d.ok(&["cp", src.to_str().unwrap(), "cc:/vol1/new.txt"]);
    d.ok(&["cp", src.to_str().unwrap(), "cc:/bind/new.txt"]);
    let got = d.ok(&[
        "run",
        "--rm",
        "-v",
        "vol1:/vol1",
        "bb:local",
        "cat",
        "/vol1/new.txt",
    ]);
    assert_eq!(got, "copied in\n");
    assert_eq!(
        std::fs::read_to_string(host.join("new.txt")).unwrap(),
        "copied in\n"
    );
    // A read-only bind stays read-only.
    let out = d.docker(&["cp", src.to_str().unwrap(), "cc:/robind/other.txt"]);
    assert!(!out.status.success(), "{:?}", text(&out));
    assert!(!host.join("other.txt").exists());

    // Nothing of it is left in the host's mount table, and the container starts as before.
    assert_eq!(d.mounts_under(), mounts_before);
    let out = d.ok(&["start", "-a", "cc"]);
    assert_eq!(out, "");
    d.ok(&["rm", "cc"]);
}

#[test]
fn a_put_with_an_entry_outside_the_destination_is_refused_and_writes_nothing() {
    if skip() {
        return;
    }
    let d = Daemon::start();
    d.busybox("bb:local");
    d.ok(&["create", "--name", "cc", "bb:local", "true"]);

    // `../` in the middle: dockerd's error, and the entry before it is not there either.
    let tar = tar_of(&[("ok.txt", b"fine\n"), ("../evil.txt", b"evil\n")]);
    let out = d.docker_stdin(&["cp", "-", "cc:/tmp"], Some(&tar));
    let (_, stderr) = text(&out);
    assert!(!out.status.success());
    assert!(
        stderr.contains(r#""../evil.txt" is outside of "/tmp""#),
        "{stderr}"
    );
    assert!(
        cp_out(&d, "cc", "/tmp/ok.txt").is_none(),
        "ok.txt was written"
    );
    assert!(
        cp_out(&d, "cc", "/evil.txt").is_none(),
        "evil.txt was written"
    );
    let listing = d.docker(&["cp", "cc:/tmp", "-"]);
    let mut archive = tar::Archive::new(&listing.stdout[..]);
    let names: Vec<String> = archive
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().display().to_string())
        .collect();
    assert_eq!(names, ["tmp/"], "left in /tmp: {names:?}");

    // A hard link out of it too.
    let tar = hardlink_tar("h", "../../etc/passwd");
    let out = d.docker_stdin(&["cp", "-", "cc:/tmp"], Some(&tar));
    let (_, stderr) = text(&out);
    assert!(!out.status.success());
    assert!(stderr.contains("invalid hardlink"), "{stderr}");

    // An absolute name is taken below the destination, as dockerd takes it (today the tar
    // stops there and the rest is dropped without a word).
    let tar = tar_of(&[("/abs.txt", b"abs\n"), ("after.txt", b"after\n")]);
    let out = d.docker_stdin(&["cp", "-", "cc:/tmp"], Some(&tar));
    assert!(out.status.success(), "{:?}", text(&out));
    assert_eq!(
        cp_out(&d, "cc", "/tmp/abs.txt").as_deref(),
        Some(&b"abs\n"[..])
    );
    assert_eq!(
        cp_out(&d, "cc", "/tmp/after.txt").as_deref(),
        Some(&b"after\n"[..])
    );
    d.ok(&["rm", "cc"]);
}

#[test]
fn a_put_that_fills_the_disk_leaves_nothing_half_written() {
    if skip() {
        return;
    }
    // A 1 MiB tmpfs under the daemon's directory (unmounted with it), bound into the container.
    let d = Daemon::start_with(|dir| {
        let small = dir.join("small");
        std::fs::create_dir_all(&small).unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"])
            .arg(&small)
            .status()
            .unwrap();
        assert!(status.success(), "mount tmpfs");
    });
    d.busybox("bb:local");
    let small = d.dir.join("small");
    std::fs::write(small.join("old.txt"), "old\n").unwrap();
    let bind = format!("{}:/small", small.display());
    d.ok(&[
        "run", "-d", "--name", "cc", "-v", &bind, "bb:local", "sleep", "300",
    ]);
    let big = vec![b'x'; 2 << 20];
    let tar = tar_of(&[
        ("old.txt", b"new\n"),
        ("first.txt", b"first\n"),
        ("big.bin", &big),
    ]);
    let out = d.docker_stdin(&["cp", "-", "cc:/small"], Some(&tar));
    assert!(!out.status.success(), "{:?}", text(&out));
    let mut left: Vec<String> = std::fs::read_dir(&small)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(left, ["old.txt"], "left: {left:?}");
    assert_eq!(
        std::fs::read_to_string(small.join("old.txt")).unwrap(),
        "old\n"
    );
    // A tar that fits goes in whole.
    let tar = tar_of(&[("old.txt", b"new\n"), ("first.txt", b"first\n")]);
    d.docker_stdin(&["cp", "-", "cc:/small"], Some(&tar));
    assert_eq!(
        std::fs::read_to_string(small.join("old.txt")).unwrap(),
        "new\n"
    );
    assert!(Path::new(&small.join("first.txt")).exists());
    d.ok(&["rm", "-f", "cc"]);
}
