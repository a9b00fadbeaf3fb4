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

/// A tar of regular files and symlinks (`Err(target)`).
fn tar_with_links(entries: &[(&str, Result<&[u8], &str>)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (path, entry) in entries {
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o644);
        h.set_mtime(0);
        match entry {
            Ok(data) => {
                h.set_size(data.len() as u64);
                b.append_data(&mut h, path, *data).unwrap();
            }
            Err(target) => {
                h.set_entry_type(tar::EntryType::Symlink);
                h.set_size(0);
                b.append_link(&mut h, path, target).unwrap();
            }
        }
    }
    b.into_inner().unwrap()
}

#[test]
fn symlinks_in_an_archive_never_reach_outside_it() {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("secret.json");
    std::fs::write(
        &secret,
        r#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#,
    )
    .unwrap();
    let store = ImageStore::open(&dir.path().join("store")).unwrap();
    let manifest = r#"[{"Config":"c.json","RepoTags":["evil:1"],"Layers":["l/layer.tar"]}]"#;
    let secret = secret.display().to_string();
    for archive in [
        // /dev/zero would be read forever; a FIFO would block; the secret would be stored.
        tar_with_links(&[("manifest.json", Err("/dev/zero"))]),
        tar_with_links(&[
            ("manifest.json", Ok(manifest.as_bytes())),
            ("c.json", Err(&secret)),
        ]),
        tar_with_links(&[
            ("manifest.json", Ok(manifest.as_bytes())),
            ("up", Err("..")),
            (
                "c.json",
                Err("up/up/up/up/up/up/up/up/up/up/up/up/dev/zero"),
            ),
        ]),
        tar_with_links(&[
            ("manifest.json", Ok(manifest.as_bytes())),
            ("c.json", Ok(b"{}")),
            ("l", Err("/dev")),
            ("l/layer.tar", Err("zero")),
        ]),
        tar_with_links(&[
            ("oci-layout", Ok(br#"{"imageLayoutVersion":"1.0.0"}"#)),
            ("index.json", Err("/proc/self/environ")),
        ]),
    ] {
        let err = load(&store, &archive[..], &Platform::host()).unwrap_err();
        let text = err.to_string();
        assert!(
            [
                "No such file",
                "no manifest.json",
                "not a regular file",
                "unreadable",
                "outside of destination",
            ]
            .iter()
            .any(|m| text.contains(m)),
            "{text}"
        );
    }
    assert!(store.metadata.images().unwrap().is_empty());
    // A link inside the archive still works (older Dockers link shared layers).
    let layer = tar_of(&[("hello", b"world")]);
    let config = format!(
        r#"{{"architecture":"amd64","os":"linux","rootfs":{{"type":"layers","diff_ids":["{}"]}}}}"#,
        Digest::of(&layer)
    );
    let archive = tar_with_links(&[
        ("manifest.json", Ok(manifest.as_bytes())),
        ("c.json", Ok(config.as_bytes())),
        ("l0/layer.tar", Ok(&layer)),
        ("l", Err("l0")),
    ]);
    let loaded = load(&store, &archive[..], &Platform::host()).unwrap();
    assert_eq!(loaded, ["docker.io/library/evil:1"]);
}

#[test]
fn json_files_past_16_mib_are_refused() {
    let big = vec![b' '; (16 << 20) + 1];
    let archive = tar_of(&[("manifest.json", &big)]);
    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::open(dir.path()).unwrap();
    let err = load(&store, &archive[..], &Platform::host()).unwrap_err();
    assert!(err.to_string().contains("larger than"), "{err}");
}

#[test]
fn nested_indexes_are_bounded() {
    // index_9 -> index_8 -> ... -> index_0 -> a manifest that is not there.
    let mut blobs: Vec<(String, Vec<u8>)> = Vec::new();
    let mut child = (
        "application/vnd.oci.image.manifest.v1+json",
        format!("sha256:{}", "0".repeat(64)),
    );
    for _ in 0..10 {
        let index = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": [{"mediaType": child.0, "digest": child.1, "size": 1,
                "platform": {"architecture": Platform::host().architecture, "os": "linux"}}],
        }))
        .unwrap();
        let digest = Digest::of(&index);
        blobs.push((format!("blobs/sha256/{}", digest.hex()), index));
        child = (
            "application/vnd.oci.image.index.v1+json",
            digest.to_string(),
        );
    }
    let top = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{"mediaType": child.0, "digest": child.1, "size": 1}],
    }))
    .unwrap();
    let mut entries: Vec<(&str, &[u8])> = vec![
        ("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#),
        ("index.json", &top),
    ];
    entries.extend(blobs.iter().map(|(p, b)| (p.as_str(), b.as_slice())));
    let archive = tar_of(&entries);
    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::open(dir.path()).unwrap();
    let err = load(&store, &archive[..], &Platform::host()).unwrap_err();
    assert!(err.to_string().contains("nested more than"), "{err}");
}
