//! `commit`: what a container changed through its overlay becomes the next layer of a new
//! image, and unpacking that image shows the changes.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions unwrap too

mod common;

use common::{tar_of, with_mounted};

use berth_image::commit::{commit, CommitOptions};
use berth_image::import::ImageStore;
use berth_image::manifest::{self, Manifest};
use berth_image::reference::Reference;

/// A store holding `base:1` (files `old` and `keep`), and the digest of its manifest.
fn base_image() -> (tempfile::TempDir, ImageStore, berth_image::digest::Digest) {
    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::open(dir.path()).unwrap();
    let base: Reference = "base:1".parse().unwrap();
    store
        .import(
            &tar_of(&[("old", b"o"), ("keep", b"k")])[..],
            Some(&base),
            &[],
        )
        .unwrap();
    let parent = store.metadata.image(&base.to_string()).unwrap().target;
    (dir, store, parent)
}

/// The active snapshot `ctr` of a container on image `manifest`; returns its mounts.
fn container_on(
    store: &ImageStore,
    manifest: &berth_image::digest::Digest,
) -> Vec<berth_image::snapshot::Mount> {
    let top = berth_image::unpack::unpack(store, manifest)
        .unwrap()
        .unwrap();
    store
        .snapshots
        .prepare("ctr", Some(&top.to_string()))
        .unwrap()
}

#[test]
fn a_containers_changes_become_the_next_layer() {
    let (dir, store, parent) = base_image();
    // The container: writes a file and deletes one, through its overlay.
    let mounts = container_on(&store, &parent);
    with_mounted(&mounts, &dir.path().join("rootfs"), || {
        std::fs::write(dir.path().join("rootfs/new"), b"n").unwrap();
        std::fs::remove_file(dir.path().join("rootfs/old")).unwrap();
    });
    let upper = store.snapshots.upper_dir("ctr").unwrap();
    let name: Reference = "derived:1".parse().unwrap();
    let mut opts = CommitOptions {
        comment: "two changes".into(),
        ..Default::default()
    };
    opts.config
        .insert("Cmd".into(), serde_json::json!(["/new"]));
    opts.top.insert("container".into(), serde_json::json!("c1"));
    let id = commit(&store, &parent, &upper, Some(&name), &opts).unwrap();

    let image = store.metadata.image(&name.to_string()).unwrap();
    let Manifest::Image(m) =
        manifest::parse(None, &store.content.read_to_vec(&image.target).unwrap()).unwrap()
    else {
        panic!("not an image")
    };
    assert_eq!(m.layers().len(), 2);
    let config: serde_json::Value =
        serde_json::from_slice(&store.content.read_to_vec(&id).unwrap()).unwrap();
    assert_eq!(config["rootfs"]["diff_ids"].as_array().unwrap().len(), 2);
    assert_eq!(config["config"]["Cmd"], serde_json::json!(["/new"]));
    assert_eq!(config["container"], "c1");
    let Manifest::Image(base) =
        manifest::parse(None, &store.content.read_to_vec(&parent).unwrap()).unwrap()
    else {
        panic!("not an image")
    };
    assert_eq!(config["parent"], base.config().digest().to_string());
    assert_eq!(
        config["history"].as_array().unwrap().last().unwrap()["comment"],
        "two changes"
    );

    // Its top snapshot shows the container's view.
    let top = berth_image::unpack::unpack(&store, &image.target)
        .unwrap()
        .unwrap();
    let view = store
        .snapshots
        .view("check", Some(&top.to_string()))
        .unwrap();
    let seen = with_mounted(&view, &dir.path().join("check"), || {
        (
            dir.path().join("check/old").exists(),
            std::fs::read(dir.path().join("check/new")).ok(),
            std::fs::read(dir.path().join("check/keep")).ok(),
        )
    });
    assert_eq!(seen, (false, Some(b"n".to_vec()), Some(b"k".to_vec())));
}

#[test]
fn export_writes_the_merged_tree() {
    let (dir, store, parent) = base_image();
    let mounts = container_on(&store, &parent);
    let mut out = Vec::new();
    with_mounted(&mounts, &dir.path().join("rootfs"), || {
        std::fs::write(dir.path().join("rootfs/new"), b"n").unwrap();
        std::fs::remove_file(dir.path().join("rootfs/old")).unwrap();
        berth_image::export::export(&dir.path().join("rootfs"), &mut out).unwrap();
    });
    let mut names: Vec<String> = tar::Archive::new(&out[..])
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().display().to_string())
        .collect();
    names.sort();
    // The merged view: no whiteout markers, the deleted file gone, the new one there.
    assert_eq!(names, ["keep", "new"]);
}
