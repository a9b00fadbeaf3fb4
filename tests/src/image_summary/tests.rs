use super::*;
use std::io::Write;

/// One entry of a hand-made tar.
enum E<'a> {
    Dir(&'a str, u32),
    File(&'a str, u32, &'a [u8]),
    Owned(&'a str, u32, u64, u64, &'a [u8]),
    Symlink(&'a str, &'a str),
    Hardlink(&'a str, &'a str),
}

fn tar_of(entries: &[E<'_>]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for e in entries {
        let mut h = tar::Header::new_gnu();
        h.set_mtime(1_700_000_000);
        h.set_uid(0);
        h.set_gid(0);
        match e {
            E::Dir(p, mode) => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_mode(*mode);
                h.set_size(0);
                b.append_data(&mut h, p, std::io::empty()).unwrap();
            }
            E::File(p, mode, data) => {
                h.set_mode(*mode);
                h.set_size(data.len() as u64);
                b.append_data(&mut h, p, *data).unwrap();
            }
            E::Owned(p, mode, uid, gid, data) => {
                h.set_mode(*mode);
                h.set_uid(*uid);
                h.set_gid(*gid);
                h.set_size(data.len() as u64);
                b.append_data(&mut h, p, *data).unwrap();
            }
            E::Symlink(p, target) => {
                h.set_entry_type(tar::EntryType::Symlink);
                h.set_mode(0o777);
                h.set_size(0);
                b.append_link(&mut h, p, target).unwrap();
            }
            E::Hardlink(p, target) => {
                h.set_entry_type(tar::EntryType::Link);
                h.set_mode(0o644);
                h.set_size(0);
                b.append_link(&mut h, p, target).unwrap();
            }
        }
    }
    b.into_inner().unwrap()
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

fn sha(data: &[u8]) -> String {
    format!("sha256:{}", hex(&Sha256::digest(data)))
}

fn config(extra: Value, layers: &[&[u8]], history: Value) -> Vec<u8> {
    let diff_ids: Vec<String> = layers.iter().map(|l| sha(l)).collect();
    serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "config": extra,
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": history,
    }))
    .unwrap()
}

/// A docker-archive save of one image with `layers` (stored as given).
fn docker_archive(config: &[u8], layers: &[Vec<u8>]) -> Vec<u8> {
    let names: Vec<String> = (0..layers.len())
        .map(|i| format!("l{i}/layer.tar"))
        .collect();
    let manifest =
        serde_json::json!([{"Config": "c.json", "RepoTags": ["x:latest"], "Layers": names}]);
    let mut entries = vec![(
        "manifest.json".to_string(),
        serde_json::to_vec(&manifest).unwrap(),
    )];
    entries.push(("c.json".into(), config.to_vec()));
    for (n, l) in names.iter().zip(layers) {
        entries.push((n.clone(), l.clone()));
    }
    let refs: Vec<E<'_>> = entries.iter().map(|(n, d)| E::File(n, 0o644, d)).collect();
    tar_of(&refs)
}

fn base_layer() -> Vec<u8> {
    tar_of(&[
        E::Dir("./", 0o755),
        E::Dir("./bin/", 0o755),
        E::File("./bin/busybox", 0o755, b"ELF"),
        E::Symlink("./bin/sh", "/bin/busybox"),
        E::Dir("./tmp/", 0o1777),
    ])
}

fn second_layer() -> Vec<u8> {
    tar_of(&[
        E::Dir("etc", 0o755),
        E::Owned("etc/conf", 0o4755, 1000, 50, b"hello\n"),
        E::Hardlink("etc/conf2", "etc/conf"),
        E::File("etc/.wh.gone", 0o600, b""),
        E::Dir("var", 0o755),
        E::File("var/.wh..wh..opq", 0o600, b""),
        E::File(".wh.tmp", 0o600, b""),
    ])
}

fn history() -> Value {
    serde_json::json!([
        {"created_by": "import"},
        {"created_by": "ENV A=b", "empty_layer": true},
        {"created_by": "RUN x"},
    ])
}

fn sample() -> Vec<u8> {
    let (l0, l1) = (base_layer(), second_layer());
    let cfg = config(
        serde_json::json!({
            "Cmd": ["sh"], "Entrypoint": null, "User": "", "WorkingDir": "/w",
            "Env": ["A=b"], "Labels": {}, "Hostname": "h", "Volumes": null,
        }),
        &[&l0, &l1],
        history(),
    );
    docker_archive(&cfg, &[l0, gzip(&l1)])
}

#[test]
fn docker_archive_is_summarized() {
    let s = summarize_bytes(&sample()).unwrap();
    assert_eq!(s.layers, 2);
    assert_eq!(s.non_empty_history, 2);
    assert_eq!(s.architecture.as_deref(), Some("amd64"));
    assert_eq!(s.os.as_deref(), Some("linux"));
    // null and "" are absent, {} is kept, fields not in the list are dropped.
    let keys: Vec<&str> = s.config.keys().map(String::as_str).collect();
    assert_eq!(keys, ["Cmd", "Env", "Labels", "WorkingDir"]);
    assert_eq!(s.config["Labels"], serde_json::json!({}));

    let l0 = &s.layer_files[0];
    let paths: Vec<&str> = l0.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(paths, ["bin", "bin/busybox", "bin/sh", "tmp"]);
    assert_eq!(l0[1].sha256.as_deref(), Some(sha(b"ELF").as_str()));
    assert_eq!(l0[1].size, 3);
    assert_eq!(l0[2].kind, "symlink");
    assert_eq!(l0[2].link.as_deref(), Some("/bin/busybox"));
    assert_eq!(l0[3].mode, "1777");

    let l1 = &s.layer_files[1];
    let got: Vec<(&str, &str)> = l1
        .iter()
        .map(|e| (e.path.as_str(), e.kind.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            ("etc", "dir"),
            ("etc/conf", "file"),
            ("etc/conf2", "hardlink"),
            ("etc/gone", "whiteout"),
            ("tmp", "whiteout"),
            ("var", "dir"),
            ("var", "opaque"),
        ]
    );
    let conf = &l1[1];
    assert_eq!((conf.mode.as_str(), conf.uid, conf.gid), ("4755", 1000, 50));
    assert_eq!(l1[2].link.as_deref(), Some("etc/conf"));
    assert_eq!(l1[2].size, 0);
    assert_eq!(l1[3].mode, "0000");
}

#[test]
fn zstd_layers_are_read() {
    let l0 = base_layer();
    let z = zstd::stream::encode_all(l0.as_slice(), 3).unwrap();
    let cfg = config(serde_json::json!({}), &[&l0], serde_json::json!([{}]));
    let s = summarize_bytes(&docker_archive(&cfg, &[z])).unwrap();
    assert_eq!(s.layer_files[0].len(), 4);
    assert!(s.config.is_empty());
}

#[test]
fn oci_layout_is_summarized_through_a_nested_index() {
    let (l0, l1) = (base_layer(), second_layer());
    let l1z = gzip(&l1);
    let cfg = config(serde_json::json!({"Cmd": []}), &[&l0, &l1], history());
    let desc = |data: &[u8], media: &str| serde_json::json!({"mediaType": media, "digest": sha(data), "size": data.len()});
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "config": desc(&cfg, "application/vnd.oci.image.config.v1+json"),
        "layers": [
            desc(&l0, "application/vnd.oci.image.layer.v1.tar"),
            desc(&l1z, "application/vnd.oci.image.layer.v1.tar+gzip"),
        ],
    }))
    .unwrap();
    let inner = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "manifests": [desc(&manifest, "application/vnd.oci.image.manifest.v1+json")],
    }))
    .unwrap();
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "manifests": [desc(&inner, "application/vnd.oci.image.index.v1+json")],
    }))
    .unwrap();
    let blob = |d: &[u8]| format!("blobs/sha256/{}", &sha(d)["sha256:".len()..]);
    let files = [
        (
            "oci-layout".to_string(),
            br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec(),
        ),
        ("index.json".to_string(), index),
        (blob(&inner), inner.clone()),
        (blob(&manifest), manifest.clone()),
        (blob(&cfg), cfg.clone()),
        (blob(&l0), l0.clone()),
        (blob(&l1z), l1z.clone()),
    ];
    let refs: Vec<E<'_>> = files.iter().map(|(n, d)| E::File(n, 0o644, d)).collect();
    let oci = summarize_bytes(&tar_of(&refs)).unwrap();
    assert_eq!(oci.config["Cmd"], serde_json::json!([]));
    assert_eq!(oci.layers, 2);
    // The same image saved as a docker-archive summarizes the same, but for Cmd.
    let mut docker = summarize_bytes(&sample()).unwrap();
    assert_eq!(docker.layer_files, oci.layer_files);
    docker.config = oci.config.clone();
    assert!(compare(&docker, &oci).is_empty());
}

#[test]
fn summaries_round_trip_through_json() {
    let s = summarize_bytes(&sample()).unwrap();
    let text = serde_json::to_string_pretty(&s).unwrap();
    let back: Summary = serde_json::from_str(&text).unwrap();
    assert_eq!(s, back);
    let golden = Golden {
        builder: "dockerd 20.10.24 classic".into(),
        source: None,
        error: None,
        image: Some(s),
        expect: None,
        notes: None,
    };
    let text = serde_json::to_string(&golden).unwrap();
    assert!(!text.contains("\"error\""));
    assert_eq!(serde_json::from_str::<Golden>(&text).unwrap(), golden);
}

#[test]
fn compare_names_each_difference() {
    let expected = summarize_bytes(&sample()).unwrap();
    assert!(compare(&expected, &expected).is_empty());

    let mut actual = expected.clone();
    actual.config.remove("Cmd");
    actual.config.insert("User".into(), "1000".into());
    actual.layers = 3;
    actual.non_empty_history = 3;
    let l1 = &mut actual.layer_files[1];
    l1.retain(|e| e.path != "etc/gone");
    l1[0].mode = "0700".into();
    l1[1].uid = 0;
    l1[1].sha256 = Some("sha256:00".into());
    l1.push(Entry {
        path: "zz".into(),
        kind: "file".into(),
        mode: "0644".into(),
        uid: 0,
        gid: 0,
        size: 0,
        link: None,
        sha256: Some(sha(b"")),
    });
    // A dir where a symlink was expected: one line, not missing + unexpected.
    let sh = actual.layer_files[0]
        .iter_mut()
        .find(|e| e.path == "bin/sh")
        .unwrap();
    sh.kind = "dir".into();
    sh.link = None;

    let diffs = compare(&expected, &actual);
    let want = [
        r#"config.Cmd: expected ["sh"], got (absent)"#,
        r#"config.User: expected (absent), got "1000""#,
        "layers: expected 2, got 3",
        "non-empty history entries: expected 2, got 3",
        "layer 0: expected bin/sh (symlink 0777 0:0 -> /bin/busybox), got bin/sh (dir 0777 0:0)",
        "layer 1: etc (expected != got): mode 0755 != 0700",
        "layer 1: etc/conf (expected != got): owner 1000:50 != 0:50, content differs",
        "layer 1: missing etc/gone (whiteout 0000 0:0)",
        "layer 1: unexpected zz (file 0644 0:0 0 bytes)",
    ];
    assert_eq!(diffs, want, "{diffs:#?}");
}

#[test]
fn bad_archives_are_errors_not_panics() {
    assert!(summarize_bytes(b"not a tar").is_err());
    let only_junk = tar_of(&[E::File("hello", 0o644, b"x")]);
    let err = summarize_bytes(&only_junk).unwrap_err().to_string();
    assert!(
        err.contains("neither manifest.json nor index.json"),
        "{err}"
    );
    let l0 = base_layer();
    let cfg = config(serde_json::json!({}), &[&l0], serde_json::json!([]));
    let mut archive = docker_archive(&cfg, &[l0]);
    // A manifest naming a layer that is not there.
    let manifest = br#"[{"Config":"c.json","Layers":["nope/layer.tar"]}]"#;
    archive = {
        let mut files = vec![E::File("manifest.json", 0o644, manifest)];
        files.push(E::File("c.json", 0o644, &cfg));
        let _ = archive;
        tar_of(&files)
    };
    let err = summarize_bytes(&archive).unwrap_err().to_string();
    assert_eq!(err, "nope/layer.tar is missing from the archive");
}

#[test]
fn flatten_applies_whiteouts_and_opaque_dirs() {
    let l0 = tar_of(&[
        E::Dir("d", 0o755),
        E::File("d/old", 0o644, b"old"),
        E::Dir("o", 0o755),
        E::File("o/lower", 0o644, b"lower"),
        E::Dir("t", 0o755),
        E::File("t/x", 0o644, b"x"),
    ]);
    let l1 = tar_of(&[
        E::File("d/.wh.old", 0o600, b""),
        E::Dir("o", 0o700),
        E::File("o/.wh..wh..opq", 0o600, b""),
        E::File("o/upper", 0o644, b"upper"),
        E::File("t", 0o644, b"now a file"),
    ]);
    let cfg = config(
        serde_json::json!({"Cmd": ["sh"]}),
        &[&l0, &l1],
        serde_json::json!([]),
    );
    let s = summarize_bytes(&docker_archive(&cfg, &[l0, l1])).unwrap();
    let fs = flatten(&s);
    let paths: Vec<&str> = fs.keys().map(String::as_str).collect();
    assert_eq!(paths, ["d", "o", "o/upper", "t"]);
    assert_eq!(fs["o"].mode, "0700");
    assert_eq!(fs["t"].kind, "file");

    let ok: Expectation = serde_json::from_value(serde_json::json!({
        "config": {"Cmd": ["sh"], "User": null},
        "files": [
            {"path": "/o/upper", "type": "file", "mode": "0644", "uid": 0, "content": "upper"},
            {"path": "/t", "content": "now a file"},
        ],
        "absent": ["/d/old", "/o/lower", "/t/x"],
    }))
    .unwrap();
    assert!(check(&ok, &s).is_empty(), "{:?}", check(&ok, &s));

    let bad: Expectation = serde_json::from_value(serde_json::json!({
        "config": {"Cmd": null, "User": "1000"},
        "files": [
            {"path": "/o/upper", "mode": "0755", "gid": 5, "content": "other"},
            {"path": "/nope"},
        ],
        "absent": ["/t"],
    }))
    .unwrap();
    assert_eq!(
        check(&bad, &s),
        [
            r#"config.Cmd: expected (absent), got ["sh"]"#,
            r#"config.User: expected "1000", got (absent)"#,
            r#"o/upper: mode Some("0755") != 0644, owner None:Some(5) != 0:0, content is not "other""#,
            "nope: missing",
            "t: expected absent, got t (file 0644 0:0 10 bytes)",
        ]
    );
}
