#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions unwrap too

//! Pulls that must fail, each with a clear error and the store exactly as it was: a corrupted
//! blob, a missing layer, a layer that climbs out with `../`, an unknown media type, a truncated
//! download. And a pull killed with SIGKILL half-way, which the next pull resumes.

mod common;

use std::fs;
use std::process::Command;
use std::time::{Duration, Instant};

use berth_image::digest::Digest;
use berth_image::import::ImageStore;
use berth_image::reference::Reference;
use berth_registry::{pull, push, PullOptions};
use berth_tests::registry::{AuthProxy, Registry};
use common::*;

/// A store that already holds an image, so "as it was" means something. Its layer differs from
/// the busybox layer the tests push (a busybox tree made in the same second would be the same
/// layer, already there, and the pull would not fetch it).
fn store_with_an_image() -> (tempfile::TempDir, std::sync::Arc<ImageStore>) {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    let tree = tempfile::tempdir().unwrap();
    berth_tests::busybox_rootfs(tree.path()).unwrap();
    fs::write(tree.path().join("etc/already-here"), "yes\n").unwrap();
    let mut tar = tar::Builder::new(Vec::new());
    tar.follow_symlinks(false);
    tar.append_dir_all(".", tree.path()).unwrap();
    let reference: Reference = "local/already:here".parse().unwrap();
    store
        .import(tar.into_inner().unwrap().as_slice(), Some(&reference), &[])
        .unwrap();
    let manifest = store.metadata.image(&reference.to_string()).unwrap().target;
    top_chain(&store, &manifest);
    (dir, store)
}

/// Pushes `name` from `store` to its registry.
async fn push_it(store: &ImageStore, name: &str) {
    let r: Reference = name.parse().unwrap();
    push(
        &client(None),
        store,
        &r.to_string(),
        &r,
        &Default::default(),
    )
    .await
    .unwrap();
}

/// Pulls `name` into `store`, expecting an error; checks the store did not change.
async fn pull_fails(store: &std::sync::Arc<ImageStore>, name: &str) -> String {
    let before = state(store);
    let err = pull(
        &client(None),
        store,
        &name.parse().unwrap(),
        &PullOptions::default(),
    )
    .await
    .unwrap_err()
    .to_string();
    assert_eq!(
        state(store),
        before,
        "the failed pull ({err}) changed the store"
    );
    assert_consistent(store);
    err
}

/// The layer blob of the busybox image `manifest` in `store`.
fn layer_of(store: &ImageStore, manifest: &Digest) -> Digest {
    let m: serde_json::Value =
        serde_json::from_slice(&store.content.read_to_vec(manifest).unwrap()).unwrap();
    m["layers"][0]["digest"].as_str().unwrap().parse().unwrap()
}

#[tokio::test]
async fn a_corrupted_blob_fails_with_a_digest_mismatch() {
    if not_root() {
        return;
    }
    let registry = Registry::start().unwrap();
    let name = format!("{}/bad/corrupt:1", registry.host());
    let src_dir = tempfile::tempdir().unwrap();
    let src = open_store(src_dir.path());
    let manifest = import_busybox(&src, &name);
    push_it(&src, &name).await;
    let layer = layer_of(&src, &manifest);
    // Same size, other bytes: only the digest can tell.
    let path = registry.blob_path(layer.hex());
    let mut data = fs::read(&path).unwrap();
    let middle = data.len() / 2;
    for b in &mut data[middle..middle + 16] {
        *b ^= 0xff;
    }
    fs::write(&path, data).unwrap();

    let (_dir, store) = store_with_an_image();
    let err = pull_fails(&store, &name).await;
    assert!(
        err.contains(&format!("blob {layer}: digest mismatch")),
        "{err}"
    );
    assert!(!store.content.contains(&layer));
}

#[tokio::test]
async fn a_manifest_naming_a_missing_layer_fails() {
    if not_root() {
        return;
    }
    let registry = Registry::start().unwrap();
    let name = format!("{}/bad/missing:1", registry.host());
    let src_dir = tempfile::tempdir().unwrap();
    let src = open_store(src_dir.path());
    let manifest = import_busybox(&src, &name);
    push_it(&src, &name).await;
    let layer = layer_of(&src, &manifest);
    fs::remove_dir_all(registry.blob_path(layer.hex()).parent().unwrap()).unwrap();

    let (_dir, store) = store_with_an_image();
    let err = pull_fails(&store, &name).await;
    assert!(err.contains(&format!("blob {layer}")), "{err}");
    assert!(err.contains("blob unknown"), "{err}");
}

/// A tar whose one entry is `../escape` (which `tar::Builder::append_data` would refuse).
fn escaping_tar() -> Vec<u8> {
    let mut h = tar::Header::new_gnu();
    let name = b"../escape";
    h.as_gnu_mut().unwrap().name[..name.len()].copy_from_slice(name);
    h.set_size(4);
    h.set_mode(0o644);
    h.set_entry_type(tar::EntryType::Regular);
    h.set_cksum();
    let mut b = tar::Builder::new(Vec::new());
    b.append(&h, &b"evil"[..]).unwrap();
    b.into_inner().unwrap()
}

#[tokio::test]
async fn a_layer_climbing_out_with_dot_dot_is_rejected() {
    if not_root() {
        return;
    }
    let registry = Registry::start().unwrap();
    let name = format!("{}/bad/traversal:1", registry.host());
    let src_dir = tempfile::tempdir().unwrap();
    let src = open_store(src_dir.path());
    let tar = escaping_tar();
    let diff_id = Digest::of(&tar);
    craft_image(
        &src,
        &name,
        &[(&tar, "application/vnd.oci.image.layer.v1.tar", diff_id)],
    );
    push_it(&src, &name).await;

    let (dir, store) = store_with_an_image();
    let err = pull_fails(&store, &name).await;
    assert!(
        err.contains("\"../escape\" escapes the layer directory"),
        "{err}"
    );
    assert!(find(dir.path(), "escape").is_empty());
}

fn find(root: &std::path::Path, name: &str) -> Vec<std::path::PathBuf> {
    tree(root)
        .keys()
        .filter(|p| p.ends_with(name))
        .map(|p| root.join(p))
        .collect()
}

#[tokio::test]
async fn an_unknown_layer_media_type_is_refused_before_fetching() {
    if not_root() {
        return;
    }
    let registry = Registry::start().unwrap();
    let proxy = AuthProxy::without_auth(&registry).unwrap();
    let src_dir = tempfile::tempdir().unwrap();
    let src = open_store(src_dir.path());
    let name = format!("{}/bad/mediatype:1", registry.host());
    let tar = common_tar();
    craft_image(
        &src,
        &name,
        &[(
            &tar,
            "application/vnd.example.thing.v1+tar",
            Digest::of(&tar),
        )],
    );
    push_it(&src, &name).await;

    let (_dir, store) = store_with_an_image();
    let via_proxy = format!("{}/bad/mediatype:1", proxy.host());
    let err = pull_fails(&store, &via_proxy).await;
    assert!(
        err.starts_with(
            "unsupported media type application/vnd.example.thing.v1+tar for layer sha256:"
        ),
        "{err}"
    );
    assert_eq!(proxy.blob_gets(), 0, "nothing is fetched");
}

fn common_tar() -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(2);
    h.set_mode(0o644);
    b.append_data(&mut h, "hello", &b"hi"[..]).unwrap();
    b.into_inner().unwrap()
}

#[tokio::test]
async fn a_truncated_download_fails_after_resuming_and_a_later_pull_completes_it() {
    if not_root() {
        return;
    }
    let registry = Registry::start().unwrap();
    let proxy = AuthProxy::without_auth(&registry).unwrap();
    let src_dir = tempfile::tempdir().unwrap();
    let src = open_store(src_dir.path());
    let name = format!("{}/bad/truncated:1", registry.host());
    let manifest = import_busybox(&src, &name);
    push_it(&src, &name).await;
    let layer = layer_of(&src, &manifest);
    let size = src.content.info(&layer).unwrap().size;
    assert!(size > 512 << 10, "the layer is big enough to cut: {size}");

    // Every response stops after 64 KiB: four attempts get 256 KiB of it.
    proxy.truncate_blobs_after(Some(64 << 10));
    let (_dir, store) = store_with_an_image();
    let via_proxy = format!("{}/bad/truncated:1", proxy.host());
    let err = pull_fails(&store, &via_proxy).await;
    assert!(
        err.contains(&format!("blob {layer}: download failed after 4 attempts: ")),
        "{err}"
    );
    let ranges = proxy.ranges();
    assert!(
        ranges.contains(&format!("bytes={}-", 64 << 10)),
        "resumed where it broke: {ranges:?}"
    );

    // The bytes already fetched wait in the ingest area; the next pull resumes from them.
    proxy.truncate_blobs_after(None);
    let pulled = pull(
        &client(None),
        &store,
        &via_proxy.parse().unwrap(),
        &PullOptions::default(),
    )
    .await
    .unwrap();
    assert_eq!(pulled.manifest, manifest);
    assert!(
        proxy
            .ranges()
            .contains(&format!("bytes={}-", 4 * (64 << 10))),
        "{:?}",
        proxy.ranges()
    );
    assert_consistent(&store);
    assert_eq!(
        snapshot_tree(&store, &pulled.top.unwrap().to_string()),
        snapshot_tree(&src, &top_chain(&src, &manifest))
    );
}

#[tokio::test]
async fn a_pull_killed_half_way_is_completed_by_the_next_one() {
    if not_root() {
        return;
    }
    let registry = Registry::start().unwrap();
    let proxy = AuthProxy::without_auth(&registry).unwrap();
    let src_dir = tempfile::tempdir().unwrap();
    let src = open_store(src_dir.path());
    let name = format!("{}/kill/me:1", registry.host());
    let manifest = two_layer_image(&src, &name);
    push_it(&src, &name).await;
    let via_proxy = format!("{}/kill/me:1", proxy.host());

    proxy.throttle(Some(200 << 10));
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_berth-registry"))
        .args(["-q", "pull", "--root"])
        .arg(dir.path())
        .arg(&via_proxy)
        .spawn()
        .unwrap();
    struct Reap(std::process::Child);
    impl Drop for Reap {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let ingest = dir.path().join("content/ingest");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let partial: u64 = fs::read_dir(&ingest)
            .into_iter()
            .flatten()
            .filter_map(|e| fs::metadata(e.ok()?.path().join("data")).ok())
            .map(|m| m.len())
            .sum();
        if partial > 100 << 10 {
            break;
        }
        assert!(Instant::now() < deadline, "the pull never got going");
        assert!(child.try_wait().unwrap().is_none(), "the pull ended early");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    let child = Reap(child);
    drop(child);

    proxy.throttle(None);
    let store = open_store(dir.path());
    let pulled = pull(
        &client(None),
        &store,
        &via_proxy.parse().unwrap(),
        &PullOptions::default(),
    )
    .await
    .unwrap();
    assert!(
        proxy
            .ranges()
            .iter()
            .any(|r| r.starts_with("bytes=") && r != "bytes=0-"),
        "the second pull resumed: {:?}",
        proxy.ranges()
    );
    assert_consistent(&store);
    assert_eq!(
        snapshot_tree(&store, &pulled.top.unwrap().to_string()),
        snapshot_tree(&src, &top_chain(&src, &manifest))
    );
}
