//! OCI layouts: save from one store, load into another, with the names and the unpacked
//! layers; a corrupted blob or a directory that is no layout is refused and names nothing.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions unwrap too

mod common;

use common::tar_of;

use berth_image::import::ImageStore;
use berth_image::layout::{load, save};
use berth_image::manifest::Platform;
use berth_image::reference::Reference;

fn rootfs_tar() -> Vec<u8> {
    tar_of(&[("hi", b"hi")])
}

#[test]
fn save_then_load_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let a = ImageStore::open(&dir.path().join("a")).unwrap();
    let name: Reference = "localhost:5000/team/app:v1".parse().unwrap();
    a.import(&rootfs_tar()[..], Some(&name), &[]).unwrap();
    let out = dir.path().join("layout");
    save(&a, std::slice::from_ref(&name), &out).unwrap();
    assert!(out.join("oci-layout").is_file() && out.join("index.json").is_file());

    let b = ImageStore::open(&dir.path().join("b")).unwrap();
    let loaded = load(&b, &out, &Platform::host()).unwrap();
    assert_eq!(loaded, vec![name.to_string()]);
    let (ia, ib) = (
        a.metadata.image(&name.to_string()).unwrap(),
        b.metadata.image(&name.to_string()).unwrap(),
    );
    assert_eq!(ia.target, ib.target);
    assert_eq!(b.snapshots.list().unwrap().len(), 1);
    assert_eq!(a.content.list().unwrap(), b.content.list().unwrap());
}

#[test]
fn corrupted_or_missing_layouts_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let a = ImageStore::open(&dir.path().join("a")).unwrap();
    let name: Reference = "app:v1".parse().unwrap();
    a.import(&rootfs_tar()[..], Some(&name), &[]).unwrap();
    let out = dir.path().join("layout");
    save(&a, std::slice::from_ref(&name), &out).unwrap();
    // Corrupt the layer blob (the largest file).
    let mut blobs: Vec<_> = std::fs::read_dir(out.join("blobs/sha256"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    blobs.sort_by_key(|p| std::fs::metadata(p).unwrap().len());
    let layer = blobs.last().unwrap();
    let mut data = std::fs::read(layer).unwrap();
    data[600] ^= 0xff;
    std::fs::write(layer, data).unwrap();
    let b = ImageStore::open(&dir.path().join("b")).unwrap();
    let err = load(&b, &out, &Platform::host()).unwrap_err();
    assert!(err.to_string().contains("digest mismatch"), "{err}");
    assert!(b.metadata.images().unwrap().is_empty());
    let err = load(&b, dir.path(), &Platform::host()).unwrap_err();
    assert!(
        err.to_string().contains("is not an OCI image layout"),
        "{err}"
    );
}

#[test]
fn skopeo_reads_and_rewrites_our_layouts() {
    // A client no one here wrote: skopeo inspects the saved layout, copies it into a new
    // layout of its own making, and that one loads back to the same layer.
    let dir = tempfile::tempdir().unwrap();
    let a = ImageStore::open(&dir.path().join("a")).unwrap();
    let name: Reference = "app:v1".parse().unwrap();
    a.import(&rootfs_tar()[..], Some(&name), &[]).unwrap();
    let ours = dir.path().join("ours");
    save(&a, std::slice::from_ref(&name), &ours).unwrap();
    let skopeo = |args: &[String]| {
        let mut cmd = std::process::Command::new("skopeo");
        cmd.args(args);
        let out = run_captured(&mut cmd);
        assert!(
            out.status.success(),
            "skopeo {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let inspect = skopeo(&["inspect".into(), format!("oci:{}:v1", ours.display())]);
    let inspected: serde_json::Value = serde_json::from_str(&inspect).unwrap();
    assert_eq!(inspected["Layers"].as_array().unwrap().len(), 1);
    let theirs = dir.path().join("theirs");
    skopeo(&[
        "copy".into(),
        format!("oci:{}:v1", ours.display()),
        format!("oci:{}:v1", theirs.display()),
    ]);
    let b = ImageStore::open(&dir.path().join("b")).unwrap();
    let loaded = load(&b, &theirs, &Platform::host()).unwrap();
    // skopeo names it by tag only, so it loads without a full name: known by its manifest.
    assert_eq!(loaded.len(), 1);
    assert!(b.metadata.image(&loaded[0]).is_ok());
    // skopeo writes the manifest anew, but the layer is the same: the same chain id unpacked.
    let keys = |s: &ImageStore| -> Vec<String> {
        s.snapshots
            .list()
            .unwrap()
            .into_iter()
            .map(|i| i.key)
            .collect()
    };
    assert_eq!(keys(&b), keys(&a));
}

/// Runs a command with a time limit (60 s), capturing its output.
fn run_captured(cmd: &mut std::process::Command) -> std::process::Output {
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("{cmd:?} did not finish within 60 s");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}
