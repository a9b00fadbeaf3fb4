#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions unwrap too

//! The escape suite (see `escape.rs` for the table), its files part: `docker cp` of a symlink
//! that points at a host file, a mount destination through an image's symlink that points out,
//! and image layers whose entries climb out with `../` (`docker import`, `docker load`).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{skip, text, Daemon};

/// A scratch directory inside the daemon's directory (removed with it).
fn scratch(d: &Daemon, name: &str) -> PathBuf {
    let dir = d.dir.join("scratch").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A tar of `(name, content)` pairs, the names written as given (`../` kept: the tar crate's
/// own path setters refuse it).
fn tar_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, content) in entries {
        let mut h = tar::Header::new_old();
        h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        h.set_size(content.len() as u64);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h.set_entry_type(tar::EntryType::Regular);
        h.set_cksum();
        b.append(&h, *content).unwrap();
    }
    b.into_inner().unwrap()
}

/// The hex sha256 of `bytes` (sha256sum).
fn sha256(bytes: &[u8]) -> String {
    let out = common::run_env(Path::new("/usr/bin/sha256sum"), &[], &[], Some(bytes));
    assert!(out.status.success());
    text(&out).0.split_whitespace().next().unwrap().to_string()
}

/// Removes a file on drop (a file the test may have let out on the host).
struct Planted(PathBuf);

impl Drop for Planted {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn cp_of_a_symlink_to_a_host_file_gives_the_link() {
    if skip() {
        return;
    }
    let d = Daemon::start();
    d.busybox("bb:local");
    d.ok(&[
        "run",
        "--name",
        "leak",
        "bb:local",
        "sh",
        "-c",
        "ln -s /etc/shadow /leak && ln -s ../../../../../../etc/shadow /leak2",
    ]);
    let out = scratch(&d, "cp");
    // The link itself, as dockerd copies it.
    d.ok(&["cp", "leak:/leak", s(&out.join("leak"))]);
    assert_eq!(
        std::fs::read_link(out.join("leak")).unwrap(),
        Path::new("/etc/shadow")
    );
    // -L follows it inside the container, whose /etc/shadow does not exist: never the host's.
    for link in ["/leak", "/leak2"] {
        let o = d.docker(&[
            "cp",
            "-L",
            &format!("leak:{link}"),
            s(&out.join("followed")),
        ]);
        let (_, e) = text(&o);
        assert_eq!(o.status.code(), Some(1), "{e}");
        assert!(
            e.contains("Could not find the file /etc/shadow in container leak"),
            "{e}"
        );
        assert!(!out.join("followed").exists());
    }
    // As an archive too: the tar holds the link, not the host's file.
    let o = d.docker(&["cp", "leak:/leak", "-"]);
    assert!(o.status.success());
    let mut archive = tar::Archive::new(&o.stdout[..]);
    let entries: Vec<(tar::EntryType, String)> = archive
        .entries()
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let target = e.link_name().unwrap().unwrap_or_default();
            (e.header().entry_type(), target.display().to_string())
        })
        .collect();
    assert_eq!(
        entries,
        [(tar::EntryType::Symlink, "/etc/shadow".to_string())]
    );
}

#[test]
fn a_mount_through_an_image_symlink_stays_in_the_container() {
    if skip() {
        return;
    }
    let d = Daemon::start();
    d.busybox("bb:local");
    // An image whose /esc points out of the root, absolutely and through `..`, at a host
    // directory: a volume and a tmpfs mounted on /esc/target must land inside the rootfs.
    let host = Planted(PathBuf::from(format!(
        "/tmp/berth-escape-mount-{}",
        std::process::id()
    )));
    std::fs::create_dir_all(&host.0).unwrap();
    let script = format!(
        "ln -s {0} /esc && ln -s ../../../../../..{0} /esc2",
        host.0.display()
    );
    d.ok(&["run", "--name", "base", "bb:local", "sh", "-c", &script]);
    d.ok(&["commit", "base", "esc:1"]);
    for (flag, spec) in [
        ("-v", "vol1:/esc/target"),
        ("-v", "vol2:/esc2/target"),
        ("--tmpfs", "/esc/target"),
        ("--mount", "type=volume,source=vol3,target=/esc2/target"),
    ] {
        let out = d.ok(&[
            "run",
            "--rm",
            flag,
            spec,
            "esc:1",
            "sh",
            "-c",
            "touch /esc/target/made /esc2/target/made 2>/dev/null; grep -c /target /proc/self/mountinfo",
        ]);
        assert_eq!(out.trim(), "1", "{flag} {spec}");
        assert_eq!(
            std::fs::read_dir(&host.0).unwrap().count(),
            0,
            "{flag} {spec}: something was made in the host's directory"
        );
    }
}

#[test]
fn layers_with_entries_outside_the_root_are_refused() {
    if skip() {
        return;
    }
    let d = Daemon::start();
    let pid = std::process::id();
    let names = [
        format!("../escape-{pid}"),
        format!("a/../../escape-{pid}"),
        format!("../../../../../../../../tmp/berth-escape-{pid}"),
    ];
    let planted: Vec<Planted> = [
        d.data_root.join(format!("escape-{pid}")),
        d.dir.join(format!("escape-{pid}")),
        PathBuf::from(format!("/tmp/berth-escape-{pid}")),
    ]
    .into_iter()
    .map(Planted)
    .collect();
    let nothing_outside = |what: &str| {
        for p in &planted {
            assert!(!p.0.exists(), "{what}: {} was written", p.0.display());
        }
        let found = Command::new("find")
            .arg(&d.dir)
            .args(["-name", &format!("*escape-{pid}*")])
            .output()
            .unwrap();
        assert_eq!(text(&found).0, "", "{what}");
    };

    // docker import (the layer is the tar itself).
    for name in &names {
        let tar = tar_of(&[("ok.txt", b"fine\n"), (name, b"evil\n")]);
        let file = d.dir.join("layer.tar");
        std::fs::write(&file, &tar).unwrap();
        let out = d.docker(&["import", s(&file), "evil:import"]);
        let (o, e) = text(&out);
        assert!(!out.status.success(), "import {name}: {o}");
        assert!(e.contains(name.as_str()), "import {name}: {e}");
        nothing_outside(&format!("import {name}"));
    }
    assert!(!d
        .ok(&["images", "-q", "evil"])
        .contains(char::is_alphanumeric));

    // docker load (a docker-archive whose one layer holds the entry).
    for name in &names {
        let layer = tar_of(&[("ok.txt", b"fine\n"), (name, b"evil\n")]);
        let diff_id = sha256(&layer);
        let config = serde_json::json!({
            "architecture": "amd64",
            "os": "linux",
            "config": {"Cmd": ["/ok.txt"]},
            "rootfs": {"type": "layers", "diff_ids": [format!("sha256:{diff_id}")]},
        })
        .to_string();
        let config_hex = sha256(config.as_bytes());
        let manifest = serde_json::json!([{
            "Config": format!("{config_hex}.json"),
            "RepoTags": ["evil:load"],
            "Layers": [format!("{diff_id}/layer.tar")],
        }])
        .to_string();
        let mut b = tar::Builder::new(Vec::new());
        for (path, data) in [
            (format!("{config_hex}.json"), config.as_bytes()),
            (format!("{diff_id}/layer.tar"), &layer[..]),
            ("manifest.json".to_string(), manifest.as_bytes()),
        ] {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_cksum();
            b.append_data(&mut h, path, data).unwrap();
        }
        let archive = b.into_inner().unwrap();
        let out = d.docker_stdin(&["load"], Some(&archive));
        let (o, e) = text(&out);
        assert!(!out.status.success(), "load {name}: {o}");
        assert!(e.contains(name.as_str()), "load {name}: {e}");
        nothing_outside(&format!("load {name}"));
    }
    assert!(!d
        .ok(&["images", "-q", "evil"])
        .contains(char::is_alphanumeric));
}
