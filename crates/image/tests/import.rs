//! `import`: a root filesystem tarball becomes a named one-layer image whose blobs, config,
//! manifest and snapshot are all in the store.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions unwrap too

use std::io::Write;

use berth_image::import::ImageStore;
use berth_image::manifest::{self, Manifest};
use berth_image::reference::Reference;

fn rootfs_tar() -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut dir = tar::Header::new_gnu();
    dir.set_entry_type(tar::EntryType::Directory);
    dir.set_mode(0o755);
    dir.set_size(0);
    dir.set_uid(0);
    dir.set_gid(0);
    dir.set_mtime(0);
    b.append_data(&mut dir, "bin", &[][..]).unwrap();
    let mut file = tar::Header::new_gnu();
    file.set_mode(0o755);
    file.set_size(5);
    file.set_uid(0);
    file.set_gid(0);
    file.set_mtime(0);
    b.append_data(&mut file, "bin/hello", &b"hello"[..])
        .unwrap();
    b.into_inner().unwrap()
}

#[test]
fn import_makes_a_named_one_layer_image() {
    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::open(dir.path()).unwrap();
    let name: Reference = "imported:v1".parse().unwrap();
    let changes = vec![
        "CMD [\"/bin/hello\"]".to_string(),
        "ENV A=b".to_string(),
        "WORKDIR /bin".to_string(),
    ];
    let id = store
        .import(&rootfs_tar()[..], Some(&name), &changes)
        .unwrap();

    let image = store
        .metadata
        .image("docker.io/library/imported:v1")
        .unwrap();
    let bytes = store.content.read_to_vec(&image.target).unwrap();
    let Manifest::Image(m) = manifest::parse(Some(&image.media_type), &bytes).unwrap() else {
        panic!("not an image manifest")
    };
    assert_eq!(m.config().digest().to_string(), id.to_string());
    assert_eq!(m.layers().len(), 1);
    let layer: berth_image::digest::Digest = m.layers()[0].digest().to_string().parse().unwrap();
    assert!(store.content.contains(&layer));
    let config: serde_json::Value =
        serde_json::from_slice(&store.content.read_to_vec(&id).unwrap()).unwrap();
    assert_eq!(config["config"]["Cmd"], serde_json::json!(["/bin/hello"]));
    assert_eq!(config["config"]["Env"], serde_json::json!(["A=b"]));
    assert_eq!(config["config"]["WorkingDir"], "/bin");
    // An uncompressed layer's blob digest is its diff_id, and its snapshot is committed under it.
    let diff_id = config["rootfs"]["diff_ids"][0].as_str().unwrap();
    assert_eq!(diff_id, layer.to_string());
    let info = store.snapshots.stat(diff_id).unwrap();
    assert!(matches!(info.kind, berth_image::snapshot::Kind::Committed));
    // A read-only view of it, mounted, shows the tarball's files.
    let mounts = store.snapshots.view("check", Some(diff_id)).unwrap();
    let target = dir.path().join("mnt");
    std::fs::create_dir(&target).unwrap();
    mounts[0].mount(&target).unwrap();
    let hello = std::fs::read(target.join("bin/hello"));
    nix::mount::umount2(&target, nix::mount::MntFlags::MNT_DETACH).unwrap();
    assert_eq!(hello.unwrap(), b"hello");
    store.snapshots.remove("check").unwrap();

    // Importing the same tarball again (gzip this time) reuses the snapshot.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&rootfs_tar()).unwrap();
    let id2 = store.import(&gz.finish().unwrap()[..], None, &[]).unwrap();
    assert_ne!(id2, id);
    assert_eq!(store.snapshots.list().unwrap().len(), 1);
    assert_eq!(store.metadata.images().unwrap().len(), 2);
    // Everything the images reference survives a collection.
    let collected = berth_image::gc::collect(&store.content, &store.metadata, 0).unwrap();
    assert!(collected.blobs.is_empty(), "{collected:?}");
}

#[test]
fn bad_changes_and_bad_tarballs_leave_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::open(dir.path()).unwrap();
    let err = store
        .import(&rootfs_tar()[..], None, &["RUN rm -rf /".to_string()])
        .unwrap_err();
    assert!(err.to_string().contains("RUN is not supported"), "{err}");
    let mut truncated = rootfs_tar();
    truncated.truncate(600);
    assert!(store.import(&truncated[..], None, &[]).is_err());
    let mut escape = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(1);
    h.set_mode(0o644);
    h.as_gnu_mut().unwrap().name[..9].copy_from_slice(b"../escape");
    h.set_cksum();
    escape.append(&h, &b"x"[..]).unwrap();
    let err = store
        .import(&escape.into_inner().unwrap()[..], None, &[])
        .unwrap_err();
    assert!(
        err.to_string().contains("escape") || err.to_string().contains(".."),
        "{err}"
    );
    assert!(!dir.path().join("escape").exists());
    assert!(store.metadata.images().unwrap().is_empty());
    assert!(store.snapshots.list().unwrap().is_empty());
    assert!(store.content.list().unwrap().is_empty());
}

/// A store opened again on a full disk keeps its snapshotter and finds its image's layer: the
/// overlay check (which makes directories) fails there, and used to switch the store to an
/// empty copy snapshotter, where the layers were "not found" until a restart with space.
#[test]
fn a_store_opened_on_a_full_disk_keeps_its_snapshots() {
    if berth_tests::smallfs::skip(true) {
        return;
    }
    let mut disk = berth_tests::smallfs::SmallFs::ext4(32).unwrap();
    let root = disk.path().join("image");
    let name: Reference = "imported:v1".parse().unwrap();
    let chain = {
        let store = ImageStore::open(&root).unwrap();
        let id = store.import(&rootfs_tar()[..], Some(&name), &[]).unwrap();
        let config: serde_json::Value =
            serde_json::from_slice(&store.content.read_to_vec(&id).unwrap()).unwrap();
        config["rootfs"]["diff_ids"][0]
            .as_str()
            .unwrap()
            .to_string()
    };
    disk.fill().unwrap();
    let store = ImageStore::open(&root).unwrap();
    assert!(store.snapshots.stat(&chain).is_ok(), "the layer is there");
    assert_eq!(store.metadata.images().unwrap().len(), 1);
    assert!(!root.join("snapshots/copy").exists(), "no copy snapshotter");
}
