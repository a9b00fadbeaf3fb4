//! Unpacking a two-layer image into snapshots: chain ids, shared lower layers, whiteouts seen
//! through the mounted result, and a layer whose content does not match its diff_id.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions unwrap too

mod common;

use common::tar_of;

use berth_image::digest::Digest;
use berth_image::import::ImageStore;
use berth_image::unpack::{chain_id, unpack};
use serde_json::json;

/// Stores the layers, a config naming `diff_ids`, and a manifest; returns the manifest digest.
fn image(store: &ImageStore, layers: &[Vec<u8>], diff_ids: &[Digest]) -> Digest {
    let layer_descs: Vec<_> = layers
        .iter()
        .map(|l| {
            let d = store.content.write_blob(l).unwrap();
            json!({"mediaType": "application/vnd.oci.image.layer.v1.tar", "size": l.len(), "digest": d.to_string()})
        })
        .collect();
    let config = json!({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": diff_ids.iter().map(ToString::to_string).collect::<Vec<_>>()}});
    let config = serde_json::to_vec(&config).unwrap();
    let config_digest = store.content.write_blob(&config).unwrap();
    let manifest = json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "size": config.len(), "digest": config_digest.to_string()},
        "layers": layer_descs});
    store
        .content
        .write_blob(&serde_json::to_vec(&manifest).unwrap())
        .unwrap()
}

#[test]
fn layers_stack_into_chained_snapshots() {
    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::open(dir.path()).unwrap();
    let l1 = tar_of(&[("a", b"A"), ("keep", b"K")]);
    let l2 = tar_of(&[(".wh.a", b""), ("b", b"B")]);
    let (d1, d2) = (Digest::of(&l1), Digest::of(&l2));
    let manifest = image(&store, &[l1.clone(), l2], &[d1.clone(), d2.clone()]);
    let top = unpack(&store, &manifest).unwrap().unwrap();
    assert_eq!(top, chain_id(Some(&d1), &d2));
    assert_eq!(store.snapshots.list().unwrap().len(), 2);

    let mounts = store
        .snapshots
        .view("check", Some(&top.to_string()))
        .unwrap();
    let target = dir.path().join("mnt");
    std::fs::create_dir(&target).unwrap();
    for m in &mounts {
        m.mount(&target).unwrap();
    }
    let seen = (
        target.join("a").exists(),
        std::fs::read(target.join("b")).ok(),
        std::fs::read(target.join("keep")).ok(),
    );
    nix::mount::umount2(&target, nix::mount::MntFlags::MNT_DETACH).unwrap();
    store.snapshots.remove("check").unwrap();
    assert_eq!(seen, (false, Some(b"B".to_vec()), Some(b"K".to_vec())));

    // A second image on the same first layer reuses its snapshot.
    let l3 = tar_of(&[("c", b"C")]);
    let d3 = Digest::of(&l3);
    let other = image(&store, &[l1, l3], &[d1.clone(), d3.clone()]);
    unpack(&store, &other).unwrap();
    assert_eq!(store.snapshots.list().unwrap().len(), 3);
    // Unpacking again changes nothing.
    unpack(&store, &manifest).unwrap();
    assert_eq!(store.snapshots.list().unwrap().len(), 3);
}

#[test]
fn a_layer_that_is_not_its_diff_id_is_refused_and_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::open(dir.path()).unwrap();
    let layer = tar_of(&[("a", b"A")]);
    let manifest = image(&store, &[layer], &[Digest::of(b"something else")]);
    let err = unpack(&store, &manifest).unwrap_err();
    assert!(
        err.to_string().contains("but the image config says"),
        "{err}"
    );
    assert!(store.snapshots.list().unwrap().is_empty());
    // Config and manifest that disagree on the number of layers.
    let two = image(&store, &[tar_of(&[("x", b"X")])], &[]);
    let err = unpack(&store, &two).unwrap_err();
    assert!(err.to_string().contains("0 diff_ids for 1 layers"), "{err}");
}

#[test]
fn snapshot_gc_keeps_what_names_and_containers_need() {
    use berth_image::metadata::Image;
    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::open(dir.path()).unwrap();
    let (l1, l2, l3) = (
        tar_of(&[("a", b"A")]),
        tar_of(&[("b", b"B")]),
        tar_of(&[("c", b"C")]),
    );
    let (d1, d2, d3) = (Digest::of(&l1), Digest::of(&l2), Digest::of(&l3));
    let one = image(&store, &[l1.clone(), l2], &[d1.clone(), d2.clone()]);
    let two = image(&store, &[l1, l3], &[d1.clone(), d3.clone()]);
    let name = |n: &str, target: &Digest| {
        store
            .metadata
            .put_image(&Image {
                name: n.to_string(),
                target: target.clone(),
                media_type: "application/vnd.oci.image.manifest.v1+json".to_string(),
                size: 1,
                created: String::new(),
            })
            .unwrap()
    };
    name("one", &one);
    name("two", &two);
    unpack(&store, &one).unwrap();
    let top_two = unpack(&store, &two).unwrap().unwrap();
    assert_eq!(store.snapshots.list().unwrap().len(), 3);
    // Nothing to collect while both are named.
    assert!(berth_image::gc::collect_snapshots(&store, 0)
        .unwrap()
        .is_empty());
    // A container on image two, then image two's name goes: its layers stay for the container.
    store
        .snapshots
        .prepare("ctr", Some(&top_two.to_string()))
        .unwrap();
    store.metadata.delete_image("two", true).unwrap();
    assert!(berth_image::gc::collect_snapshots(&store, 0)
        .unwrap()
        .is_empty());
    // The container goes too: its top layer is collected, the shared base stays for image one.
    store.snapshots.remove("ctr").unwrap();
    let removed = berth_image::gc::collect_snapshots(&store, 0).unwrap();
    assert_eq!(removed, vec![top_two.to_string()]);
    let keys: Vec<String> = store
        .snapshots
        .list()
        .unwrap()
        .into_iter()
        .map(|i| i.key)
        .collect();
    assert!(keys.contains(&d1.to_string()) && keys.contains(&chain_id(Some(&d1), &d2).to_string()));
}
