//! Helpers the registry tests share: stores with images made from the busybox fixture, images
//! crafted blob by blob, trees of snapshots, and the state of a store to compare before and after.

#![allow(dead_code, clippy::unwrap_used)] // each test file uses some of these

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;
use std::sync::Arc;

use berth_image::digest::Digest;
use berth_image::import::ImageStore;
use berth_image::metadata::Image;
use berth_image::reference::Reference;
use berth_image::snapshot::Kind;
use berth_registry::credentials::Credential;
use berth_registry::{Client, ClientOptions};
use serde_json::json;

pub fn not_root() -> bool {
    let not_root = !nix::unistd::Uid::effective().is_root();
    if not_root {
        eprintln!("skipped: the registry tests need root (overlay mounts)");
    }
    not_root
}

/// A client for loopback registries, with a credential for `host` if given.
pub fn client(login: Option<(&str, &str, &str)>) -> Client {
    let mut credentials = HashMap::new();
    if let Some((host, user, password)) = login {
        credentials.insert(
            host.to_string(),
            Credential {
                username: user.into(),
                password: password.into(),
            },
        );
    }
    Client::new(ClientOptions {
        credentials,
        ..Default::default()
    })
    .unwrap()
}

pub fn open_store(dir: &Path) -> Arc<ImageStore> {
    Arc::new(ImageStore::open(dir).unwrap())
}

/// A tar of the busybox fixture's root filesystem.
pub fn busybox_tar() -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    berth_tests::busybox_rootfs(dir.path()).unwrap();
    let mut b = tar::Builder::new(Vec::new());
    b.follow_symlinks(false);
    b.append_dir_all(".", dir.path()).unwrap();
    b.into_inner().unwrap()
}

/// Imports the busybox fixture as `name`; returns the manifest digest.
pub fn import_busybox(store: &ImageStore, name: &str) -> Digest {
    let reference: Reference = name.parse().unwrap();
    store
        .import(busybox_tar().as_slice(), Some(&reference), &[])
        .unwrap();
    store.metadata.image(&reference.to_string()).unwrap().target
}

/// A busybox image with a second layer on top that adds `/etc/motd` and deletes `/bin/ls`
/// (an overlay whiteout in the committed upper). Returns the manifest digest.
pub fn two_layer_image(store: &ImageStore, name: &str) -> Digest {
    let base = import_busybox(store, &format!("{name}-base"));
    let upper = tempfile::tempdir().unwrap();
    fs::create_dir(upper.path().join("etc")).unwrap();
    fs::write(upper.path().join("etc/motd"), "second layer\n").unwrap();
    fs::create_dir(upper.path().join("bin")).unwrap();
    nix::sys::stat::mknod(
        &upper.path().join("bin/ls"),
        nix::sys::stat::SFlag::S_IFCHR,
        nix::sys::stat::Mode::empty(),
        0,
    )
    .unwrap();
    let reference: Reference = name.parse().unwrap();
    berth_image::commit::commit(
        store,
        &base,
        upper.path(),
        Some(&reference),
        &Default::default(),
    )
    .unwrap();
    store.metadata.image(&reference.to_string()).unwrap().target
}

/// Stores an image made of the given layer blobs (each with its media type and diff_id) under
/// `name`, without checking anything: for crafting bad images to push.
pub fn craft_image(store: &ImageStore, name: &str, layers: &[(&[u8], &str, Digest)]) -> Digest {
    let diff_ids: Vec<String> = layers.iter().map(|(_, _, d)| d.to_string()).collect();
    let config = serde_json::to_vec(&json!({
        "architecture": "amd64", "os": "linux", "config": {},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }))
    .unwrap();
    let config_digest = store.content.write_blob(&config).unwrap();
    let descriptors: Vec<_> = layers
        .iter()
        .map(|(blob, media_type, _)| {
            let digest = store.content.write_blob(blob).unwrap();
            json!({"mediaType": media_type, "size": blob.len(), "digest": digest.to_string()})
        })
        .collect();
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "size": config.len(), "digest": config_digest.to_string()},
        "layers": descriptors,
    }))
    .unwrap();
    let digest = store.content.write_blob(&manifest).unwrap();
    let reference: Reference = name.parse().unwrap();
    store
        .metadata
        .put_image(&Image {
            name: reference.to_string(),
            target: digest.clone(),
            media_type: "application/vnd.oci.image.manifest.v1+json".into(),
            size: manifest.len() as u64,
            created: "2026-01-01T00:00:00Z".into(),
        })
        .unwrap();
    digest
}

/// The top snapshot (chain id) of the image whose manifest is `manifest`.
pub fn top_chain(store: &ImageStore, manifest: &Digest) -> String {
    berth_image::unpack::unpack(store, manifest)
        .unwrap()
        .unwrap()
        .to_string()
}

/// Everything in the tree of committed snapshot `chain`, as seen through an overlay view:
/// path → type, mode, owner, and content digest or link target.
pub fn snapshot_tree(store: &ImageStore, chain: &str) -> BTreeMap<String, String> {
    struct Unmount<'a>(&'a Path);
    impl Drop for Unmount<'_> {
        fn drop(&mut self) {
            let _ = nix::mount::umount2(self.0, nix::mount::MntFlags::MNT_DETACH);
        }
    }
    let key = format!("tree-view-{}", std::process::id());
    let mounts = store.snapshots.view(&key, Some(chain)).unwrap();
    let target = tempfile::tempdir().unwrap();
    let tree = {
        for m in &mounts {
            m.mount(target.path()).unwrap();
        }
        let _guard = Unmount(target.path());
        tree(target.path())
    };
    store.snapshots.remove(&key).unwrap();
    tree
}

/// path → description of every entry under `root`.
pub fn tree(root: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, String>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let meta = fs::symlink_metadata(&path).unwrap();
        let rel = path.strip_prefix(root).unwrap().display().to_string();
        let ft = meta.file_type();
        let what = if ft.is_symlink() {
            format!("link {}", fs::read_link(&path).unwrap().display())
        } else if ft.is_dir() {
            "dir".to_string()
        } else if ft.is_file() {
            let mut data = Vec::new();
            fs::File::open(&path)
                .unwrap()
                .read_to_end(&mut data)
                .unwrap();
            format!("file {}", Digest::of(&data))
        } else if ft.is_char_device() {
            format!("char {}", meta.rdev())
        } else {
            "other".to_string()
        };
        out.insert(
            rel,
            format!(
                "{what} {:o} {}:{}",
                meta.mode() & 0o7777,
                meta.uid(),
                meta.gid()
            ),
        );
        if ft.is_dir() {
            walk(root, &path, out);
        }
    }
}

/// What a store holds, to compare before and after a failed pull: names, blobs, snapshots,
/// leases.
pub fn state(store: &ImageStore) -> String {
    let mut images: Vec<String> = store
        .metadata
        .images()
        .unwrap()
        .into_iter()
        .map(|i| format!("{} {}", i.name, i.target))
        .collect();
    images.sort();
    let blobs = store.content.list().unwrap();
    let snapshots = store.snapshots.list().unwrap();
    let leases = store.metadata.live_leases(0).unwrap();
    format!("images {images:?}\nblobs {blobs:?}\nsnapshots {snapshots:?}\nleases {leases:?}")
}

/// Checks a store's consistency: every blob matches its digest, no snapshot is left active,
/// no lease is left, every named image's blobs are there.
pub fn assert_consistent(store: &ImageStore) {
    assert_eq!(store.content.verify_all().unwrap(), Vec::<Digest>::new());
    for s in store.snapshots.list().unwrap() {
        assert_eq!(s.kind, Kind::Committed, "left behind: {s:?}");
    }
    assert!(store.metadata.live_leases(0).unwrap().is_empty());
    for image in store.metadata.images().unwrap() {
        let bytes = store.content.read_to_vec(&image.target).unwrap();
        let m: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        for d in m["layers"].as_array().unwrap().iter().chain([&m["config"]]) {
            let digest: Digest = d["digest"].as_str().unwrap().parse().unwrap();
            assert!(
                store.content.contains(&digest),
                "{} lacks {digest}",
                image.name
            );
        }
    }
}
