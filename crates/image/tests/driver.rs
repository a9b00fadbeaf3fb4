//! Which snapshotter a store uses (`berth_image::driver`): dockerd's driver names, a store keeping
//! the driver it was made with, a driver named explicitly refused where it cannot work or where
//! another driver's layers are, and a store on btrfs with the btrfs snapshotter, whose layers
//! carry deletions out.
//!
//! The btrfs tests need root and `mkfs.btrfs` (a loop btrfs each); without them they say so and
//! pass, but fail under `CI=true`.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions unwrap too

mod common;

use berth_image::driver::DriverError;
use berth_image::import::{Backend, ImageStore, ImportError};
use berth_image::reference::Reference;
use berth_tests::smallfs::SmallFs;

fn import(store: &ImageStore, name: &str, entries: &[(&str, &[u8])]) -> String {
    let name: Reference = name.parse().unwrap();
    let id = store
        .import(&common::tar_of(entries)[..], Some(&name), &[])
        .unwrap();
    let config: serde_json::Value =
        serde_json::from_slice(&store.content.read_to_vec(&id).unwrap()).unwrap();
    config["rootfs"]["diff_ids"][0].as_str().unwrap().to_owned()
}

#[test]
fn drivers_have_dockerds_names() {
    for (name, backend) in [
        ("overlay2", Backend::Overlay),
        ("vfs", Backend::Copy),
        ("btrfs", Backend::Btrfs),
    ] {
        let parsed = Backend::from_driver_name(name).unwrap();
        assert_eq!(parsed, backend);
        assert_eq!(parsed.driver_name(), name);
    }
    let err = Backend::from_driver_name("aufs").unwrap_err();
    assert_eq!(
        err.to_string(),
        "error initializing graphdriver: driver not supported: aufs"
    );
}

#[test]
fn a_store_keeps_its_driver_and_refuses_another_with_its_layers() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("image");
    {
        let store = ImageStore::open_with(&root, Backend::Copy).unwrap();
        assert_eq!(store.backend(), Backend::Copy);
        import(&store, "one:latest", &[("a.txt", b"a")]);
    }
    let store = ImageStore::open(&root).unwrap();
    assert_eq!(store.backend(), Backend::Copy, "the prior driver");
    drop(store);
    let err = ImageStore::open_with(&root, Backend::Overlay).unwrap_err();
    assert!(
        matches!(
            err,
            ImportError::Driver(DriverError::Prior { prior: "vfs", .. })
        ),
        "{err}"
    );
    assert!(
        err.to_string().contains("--storage-driver vfs"),
        "says what to do: {err}"
    );
    // A driver whose root holds no layer is no obstacle.
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("image");
    drop(ImageStore::open_with(&root, Backend::Copy).unwrap());
    let store = ImageStore::open_with(&root, Backend::Overlay).unwrap();
    assert_eq!(store.backend(), Backend::Overlay);
    import(&store, "two:latest", &[("b.txt", b"b")]);
    drop(store);
    assert_eq!(
        ImageStore::open(&root).unwrap().backend(),
        Backend::Overlay,
        "the driver with layers"
    );
}

#[test]
fn btrfs_elsewhere_than_on_btrfs_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    if berth_image::snapshot::btrfs::on_btrfs(dir.path()).unwrap() {
        eprintln!("skipped: the temporary directory is on btrfs");
        return;
    }
    let err = ImageStore::open_with(&dir.path().join("image"), Backend::Btrfs).unwrap_err();
    assert!(
        matches!(
            err,
            ImportError::Driver(DriverError::Prerequisites {
                driver: "btrfs",
                ..
            })
        ),
        "{err}"
    );
    assert!(
        err.to_string().starts_with(
            "error initializing graphdriver: prerequisites for driver not satisfied (wrong \
             filesystem?)"
        ),
        "dockerd's words: {err}"
    );
    assert!(!dir.path().join("image/content").exists(), "nothing made");
}

#[test]
fn a_store_on_btrfs_stacks_layers_in_subvolumes() {
    if berth_tests::smallfs::skip_btrfs() {
        return;
    }
    let small = SmallFs::btrfs(512).unwrap();
    let root = small.path().join("image");
    let store = ImageStore::open_with(&root, Backend::Btrfs).unwrap();
    assert_eq!(store.backend().driver_name(), "btrfs");
    let chain = import(
        &store,
        "base:latest",
        &[("a.txt", b"a"), ("gone.txt", b"x")],
    );
    assert!(root.join("snapshots/btrfs/metadata.json").is_file());
    // A layer deleting a file, applied on a snapshot of the first one: the deletion is carried
    // out (no whiteout left), and the first layer keeps the file.
    store.snapshots.prepare("top", Some(&chain)).unwrap();
    let upper = store.snapshots.upper_dir("top").unwrap();
    let layer = common::tar_of(&[(".wh.gone.txt", b""), ("b.txt", b"b")]);
    berth_image::layer::apply_with(&layer[..], &upper, store.whiteouts()).unwrap();
    assert!(!upper.join("gone.txt").exists() && !upper.join(".wh.gone.txt").exists());
    assert_eq!(std::fs::read(upper.join("b.txt")).unwrap(), b"b");
    let mounts = store.snapshots.view("v", Some(&chain)).unwrap();
    common::with_mounted(&mounts, &small.path().join("mnt"), || {
        assert!(small.path().join("mnt/gone.txt").is_file());
    });
    drop(store);
    assert_eq!(
        ImageStore::open(&root).unwrap().backend(),
        Backend::Btrfs,
        "the prior driver"
    );
}
