#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions unwrap too

//! Pull and push against a real registry (Debian's `docker-registry`), with skopeo as a second
//! client, and Basic and Bearer-token auth.

mod common;

use std::process::Command;
use std::sync::{Arc, Mutex};

use berth_image::reference::Reference;
use berth_registry::progress::{Progress, Status};
use berth_registry::{pull, push, PullOptions, PushOptions};
use berth_tests::registry::{AuthProxy, Registry};
use common::*;

fn reference(s: &str) -> Reference {
    s.parse().unwrap()
}

#[tokio::test]
async fn pushed_image_pulls_back_by_tag_and_digest_with_the_same_tree() {
    if not_root() {
        return;
    }
    let registry = Registry::start().unwrap();
    let host = registry.host();
    let src_dir = tempfile::tempdir().unwrap();
    let src = open_store(src_dir.path());
    let name = format!("{host}/test/busybox:1");
    let manifest = two_layer_image(&src, &name);
    let source_tree = snapshot_tree(&src, &top_chain(&src, &manifest));
    assert!(source_tree.contains_key("etc/motd"));
    assert!(!source_tree.contains_key("bin/ls"), "the whiteout hides ls");

    let client = client(None);
    let events = Arc::new(Mutex::new(Vec::<Progress>::new()));
    let sink = Arc::clone(&events);
    let pushed = push(
        &client,
        &src,
        &reference(&name).to_string(),
        &reference(&name),
        &PushOptions {
            progress: Some(Arc::new(move |p: &Progress| {
                sink.lock().unwrap().push(p.clone())
            })),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(pushed.digest, manifest);
    assert_eq!(pushed.tag.as_deref(), Some("1"));
    assert!(events
        .lock()
        .unwrap()
        .iter()
        .any(|p| p.status == Status::Pushed));

    // By tag, into an empty store.
    let dst_dir = tempfile::tempdir().unwrap();
    let dst = open_store(dst_dir.path());
    let pulled = pull(&client, &dst, &reference(&name), &PullOptions::default())
        .await
        .unwrap();
    assert_eq!(pulled.manifest, manifest);
    assert!(pulled.downloaded);
    let top = pulled.top.clone().unwrap().to_string();
    assert_eq!(snapshot_tree(&dst, &top), source_tree);
    assert_consistent(&dst);
    assert_eq!(
        dst.metadata
            .image(&name.parse::<Reference>().unwrap().to_string())
            .unwrap()
            .target,
        manifest
    );

    // Again: nothing to fetch.
    let again = pull(&client, &dst, &reference(&name), &PullOptions::default())
        .await
        .unwrap();
    assert!(!again.downloaded);

    // By digest, into another empty store.
    let by_digest = format!("{host}/test/busybox@{manifest}");
    let dst2_dir = tempfile::tempdir().unwrap();
    let dst2 = open_store(dst2_dir.path());
    let pulled = pull(
        &client,
        &dst2,
        &reference(&by_digest),
        &PullOptions::default(),
    )
    .await
    .unwrap();
    assert_eq!(pulled.digest, manifest);
    assert_eq!(
        snapshot_tree(&dst2, &pulled.top.unwrap().to_string()),
        source_tree
    );
    assert_consistent(&dst2);
}

#[tokio::test]
async fn a_second_push_skips_and_mounts_and_chunked_upload_is_read_by_skopeo() {
    if not_root() {
        return;
    }
    let registry = Registry::start().unwrap();
    let host = registry.host();
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    let name = format!("{host}/team/app:v1");
    let manifest = import_busybox(&store, &name);
    let client = client(None);
    let statuses = |events: &Arc<Mutex<Vec<Progress>>>| -> Vec<String> {
        events
            .lock()
            .unwrap()
            .iter()
            .map(|p| p.status.to_string())
            .collect()
    };
    let run = |target: String, chunk: Option<u64>| {
        let events = Arc::new(Mutex::new(Vec::<Progress>::new()));
        let sink = Arc::clone(&events);
        let options = PushOptions {
            chunk_size: chunk,
            progress: Some(Arc::new(move |p: &Progress| {
                sink.lock().unwrap().push(p.clone())
            })),
            ..Default::default()
        };
        (target, options, events)
    };

    // Chunked: 64 KiB PATCHes.
    let (target, options, events) = run(name.clone(), Some(64 << 10));
    push(
        &client,
        &store,
        &reference(&name).to_string(),
        &reference(&target),
        &options,
    )
    .await
    .unwrap();
    let s = statuses(&events);
    assert!(s.iter().filter(|s| *s == "Pushing").count() > 3, "{s:?}");

    // The same image again: the registry has every blob.
    let (target, options, events) = run(name.clone(), None);
    push(
        &client,
        &store,
        &reference(&name).to_string(),
        &reference(&target),
        &options,
    )
    .await
    .unwrap();
    assert!(statuses(&events).contains(&"Layer already exists".to_string()));

    // To another repository of the same registry: mounted, not uploaded.
    let (target, options, events) = run(format!("{host}/other/copy:v2"), None);
    push(
        &client,
        &store,
        &reference(&name).to_string(),
        &reference(&target),
        &options,
    )
    .await
    .unwrap();
    assert!(
        statuses(&events).contains(&"Mounted from team/app".to_string()),
        "{:?}",
        statuses(&events)
    );

    // skopeo reads what we pushed, and copies it back byte for byte.
    let out = Command::new("skopeo")
        .args(["inspect", "--tls-verify=false", "--raw"])
        .arg(format!("docker://{host}/other/copy:v2"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(berth_image::digest::Digest::of(&out.stdout), manifest);
    let layout = tempfile::tempdir().unwrap();
    let out = Command::new("skopeo")
        .args(["copy", "-q", "--src-tls-verify=false", "--preserve-digests"])
        .arg(format!("docker://{host}/team/app:v1"))
        .arg(format!("oci:{}:v1", layout.path().display()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.path().join("index.json")).unwrap()).unwrap();
    assert_eq!(index["manifests"][0]["digest"], manifest.to_string());
}

#[tokio::test]
async fn skopeo_pushes_an_oci_layout_and_berth_pulls_it() {
    if not_root() {
        return;
    }
    let registry = Registry::start().unwrap();
    let host = registry.host();
    // An OCI layout with two layers, written by berth's own archive code from a store...
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    let manifest = two_layer_image(&store, "local/src:1");
    let expected = snapshot_tree(&store, &top_chain(&store, &manifest));
    let layout = tempfile::tempdir().unwrap();
    berth_image::layout::save(&store, &["local/src:1".parse().unwrap()], layout.path()).unwrap();
    // ...that skopeo copies into the registry.
    let out = Command::new("skopeo")
        .args([
            "copy",
            "-q",
            "--dest-tls-verify=false",
            "--preserve-digests",
        ])
        .arg(format!("oci:{}:1", layout.path().display()))
        .arg(format!("docker://{host}/from/skopeo:latest"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dst_dir = tempfile::tempdir().unwrap();
    let dst = open_store(dst_dir.path());
    let pulled = pull(
        &client(None),
        &dst,
        &reference(&format!("{host}/from/skopeo")),
        &PullOptions::default(),
    )
    .await
    .unwrap();
    assert_eq!(pulled.manifest, manifest);
    assert_eq!(
        snapshot_tree(&dst, &pulled.top.unwrap().to_string()),
        expected
    );
    assert_consistent(&dst);
}

#[tokio::test]
async fn basic_auth_registry_needs_the_credential() {
    if not_root() {
        return;
    }
    let registry = Registry::start_with_htpasswd("alice", "s3cret").unwrap();
    let host = registry.host();
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    let name = format!("{host}/private/bb:1");
    import_busybox(&store, &name);

    let anonymous = client(None);
    let err = push(
        &anonymous,
        &store,
        &reference(&name).to_string(),
        &reference(&name),
        &Default::default(),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("unauthorized"), "{err}");
    let wrong = client(Some((&host, "alice", "nope")));
    let err = wrong.check_login(&host).await.unwrap_err();
    assert!(err.to_string().contains("unauthorized"), "{err}");

    let alice = client(Some((&host, "alice", "s3cret")));
    alice.check_login(&host).await.unwrap();
    push(
        &alice,
        &store,
        &reference(&name).to_string(),
        &reference(&name),
        &Default::default(),
    )
    .await
    .unwrap();
    let dst_dir = tempfile::tempdir().unwrap();
    let dst = open_store(dst_dir.path());
    let err = pull(&anonymous, &dst, &reference(&name), &Default::default())
        .await
        .unwrap_err();
    assert!(
        err.to_string().starts_with("pull access denied for"),
        "{err}"
    );
    assert!(dst.metadata.images().unwrap().is_empty());
    pull(&alice, &dst, &reference(&name), &Default::default())
        .await
        .unwrap();
}

#[tokio::test]
async fn bearer_token_flow_through_the_challenge() {
    if not_root() {
        return;
    }
    let registry = Registry::start().unwrap();
    let proxy = AuthProxy::start(&registry, "bob", "tok3n-pass").unwrap();
    let host = proxy.host();
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    let name = format!("{host}/secure/bb:1");
    let manifest = import_busybox(&store, &name);

    let anonymous = client(None);
    let err = anonymous.check_login(&host).await.unwrap_err();
    assert!(err.to_string().contains("unauthorized"), "{err}");
    let bob = client(Some((&host, "bob", "tok3n-pass")));
    bob.check_login(&host).await.unwrap();
    push(
        &bob,
        &store,
        &reference(&name).to_string(),
        &reference(&name),
        &Default::default(),
    )
    .await
    .unwrap();
    let dst_dir = tempfile::tempdir().unwrap();
    let dst = open_store(dst_dir.path());
    let pulled = pull(&bob, &dst, &reference(&name), &Default::default())
        .await
        .unwrap();
    assert_eq!(pulled.manifest, manifest);
    assert_consistent(&dst);
}

#[tokio::test]
async fn a_store_without_overlay_unpacks_the_pulled_layers_in_order() {
    if not_root() {
        return;
    }
    let registry = Registry::start().unwrap();
    let name = format!("{}/copy/bb:1", registry.host());
    let src_dir = tempfile::tempdir().unwrap();
    let src = open_store(src_dir.path());
    let manifest = two_layer_image(&src, &name);
    let expected = snapshot_tree(&src, &top_chain(&src, &manifest));
    let client = client(None);
    push(
        &client,
        &src,
        &reference(&name).to_string(),
        &reference(&name),
        &Default::default(),
    )
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(
        berth_image::import::ImageStore::open_with(dir.path(), berth_image::import::Backend::Copy)
            .unwrap(),
    );
    assert!(!store.snapshots.can_rebase());
    let pulled = pull(&client, &store, &reference(&name), &PullOptions::default())
        .await
        .unwrap();
    assert_eq!(
        snapshot_tree(&store, &pulled.top.unwrap().to_string()),
        expected
    );
    assert_consistent(&store);
}

#[tokio::test]
async fn https_registry_is_trusted_through_the_certs_dir_only() {
    if not_root() {
        return;
    }
    let registry = Registry::start_with_tls().unwrap();
    let host = registry.host();
    let name = format!("{host}/tls/bb:1");
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    let manifest = import_busybox(&store, &name);

    // Without the authority: HTTPS fails verification, and the plain-HTTP fallback that
    // loopback gets is refused by the TLS server.
    let untrusting = client(None);
    let err = push(
        &untrusting,
        &store,
        &reference(&name).to_string(),
        &reference(&name),
        &Default::default(),
    )
    .await
    .unwrap_err();
    assert!(
        err.to_string()
            .contains(&format!("GET https://{host}/v2/: "))
            && err.to_string().contains("certificate"),
        "{err}"
    );

    // With it in <certs>/<host>/ca.crt, as docker's certs.d.
    let certs = tempfile::tempdir().unwrap();
    std::fs::create_dir(certs.path().join(&host)).unwrap();
    std::fs::copy(
        registry.ca_cert().unwrap(),
        certs.path().join(&host).join("ca.crt"),
    )
    .unwrap();
    let trusting = berth_registry::Client::new(berth_registry::ClientOptions {
        certs_dir: Some(certs.path().to_path_buf()),
        ..Default::default()
    })
    .unwrap();
    assert!(trusting
        .base_url(&host)
        .await
        .unwrap()
        .starts_with("https://"));
    let pushed = push(
        &trusting,
        &store,
        &reference(&name).to_string(),
        &reference(&name),
        &Default::default(),
    )
    .await
    .unwrap();
    assert_eq!(pushed.digest, manifest);
    let dst_dir = tempfile::tempdir().unwrap();
    let dst = open_store(dst_dir.path());
    let pulled = pull(&trusting, &dst, &reference(&name), &Default::default())
        .await
        .unwrap();
    assert_eq!(pulled.manifest, manifest);
}
