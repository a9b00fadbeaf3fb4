//! `docker save` / `docker load` archives: ours round-trip, an older Docker's (manifest.json
//! only) loads, and paths that leave the archive are refused.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions unwrap too

mod common;

use common::tar_of;

use berth_image::archive::{load, save};
use berth_image::digest::Digest;
use berth_image::import::ImageStore;
use berth_image::manifest::Platform;
use berth_image::reference::Reference;

#[test]
fn save_and_load_round_trip_with_both_indexes() {
    let dir = tempfile::tempdir().unwrap();
    let a = ImageStore::open(&dir.path().join("a")).unwrap();
    let name: Reference = "team/app:v2".parse().unwrap();
    a.import(&tar_of(&[("f", b"data")])[..], Some(&name), &[])
        .unwrap();
    let mut archive = Vec::new();
    save(&a, std::slice::from_ref(&name), &mut archive).unwrap();
    // Docker's manifest.json is there, with the short name.
    let mut names = Vec::new();
    for entry in tar::Archive::new(&archive[..]).entries().unwrap() {
        let mut entry = entry.unwrap();
        let path = entry.path().unwrap().display().to_string();
        if path.ends_with("manifest.json") {
            let mut text = String::new();
            std::io::Read::read_to_string(&mut entry, &mut text).unwrap();
            let m: serde_json::Value = serde_json::from_str(&text).unwrap();
            assert_eq!(m[0]["RepoTags"][0], "team/app:v2");
            assert_eq!(m[0]["Layers"].as_array().unwrap().len(), 1);
        }
        names.push(path);
    }
    assert!(names.iter().any(|n| n.ends_with("oci-layout")), "{names:?}");
    let b = ImageStore::open(&dir.path().join("b")).unwrap();
    let loaded = load(&b, &archive[..], &Platform::host()).unwrap();
    assert_eq!(loaded, vec![name.to_string()]);
    assert_eq!(b.snapshots.list().unwrap().len(), 1);
}

#[test]
fn an_older_dockers_archive_loads() {
    let layer = tar_of(&[("hello", b"world")]);
    let diff_id = Digest::of(&layer);
    let config = format!(
        r#"{{"architecture":"amd64","os":"linux","rootfs":{{"type":"layers","diff_ids":["{diff_id}"]}}}}"#
    );
    let manifest = r#"[{"Config":"abc.json","RepoTags":["old:1"],"Layers":["l1/layer.tar"]}]"#;
    let archive = tar_of(&[
        ("manifest.json", manifest.as_bytes()),
        ("abc.json", config.as_bytes()),
        ("l1/layer.tar", &layer),
    ]);
    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::open(dir.path()).unwrap();
    let loaded = load(&store, &archive[..], &Platform::host()).unwrap();
    assert_eq!(loaded, vec!["docker.io/library/old:1".to_string()]);
    let keys: Vec<String> = store
        .snapshots
        .list()
        .unwrap()
        .into_iter()
        .map(|i| i.key)
        .collect();
    assert_eq!(keys, vec![diff_id.to_string()]);
}

#[test]
fn paths_leaving_the_archive_are_refused() {
    let manifest = r#"[{"Config":"../../etc/passwd","RepoTags":["evil:1"],"Layers":[]}]"#;
    let archive = tar_of(&[("manifest.json", manifest.as_bytes())]);
    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::open(dir.path()).unwrap();
    let err = load(&store, &archive[..], &Platform::host()).unwrap_err();
    assert!(err.to_string().contains("leaves the archive"), "{err}");
    assert!(store.metadata.images().unwrap().is_empty());
    let err = load(&store, &tar_of(&[("x", b"y")])[..], &Platform::host()).unwrap_err();
    assert!(err.to_string().contains("no manifest.json"), "{err}");
}
