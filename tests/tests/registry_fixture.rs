#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions unwrap too
//! Tests of the registry fixtures themselves: the registry stores and serves, htpasswd and the
//! token proxy refuse and accept as they should, the faults happen, and skopeo (a real client)
//! pushes to both.

use berth_tests::registry::{basic_auth, request, AuthProxy, Registry, Response};
use berth_tests::run_with_timeout;
use sha2::{Digest, Sha256};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

fn sha256(data: &[u8]) -> String {
    format!("sha256:{:x}", Sha256::digest(data))
}

/// Headers `(name, value)` of a request, from owned strings.
fn hdrs<'a>(list: &'a [(&'a str, String)]) -> Vec<(&'a str, &'a str)> {
    list.iter().map(|(n, v)| (*n, v.as_str())).collect()
}

/// Pushes `data` as a blob of `repo` in one POST + PUT; returns its digest.
fn push_blob(host: &str, auth: &[(&str, String)], repo: &str, data: &[u8]) -> String {
    let digest = sha256(data);
    let post = request(
        host,
        "POST",
        &format!("/v2/{repo}/blobs/uploads/"),
        &hdrs(auth),
        b"",
    )
    .unwrap();
    assert_eq!(post.status, 202, "{post:?}");
    let location = post.header("location").unwrap().to_string();
    let sep = if location.contains('?') { '&' } else { '?' };
    let put = request(
        host,
        "PUT",
        &format!("{location}{sep}digest={digest}"),
        &hdrs(auth),
        data,
    )
    .unwrap();
    assert_eq!(put.status, 201, "{put:?}");
    digest
}

/// Pushes a config blob, one layer blob and a manifest `repo:tag`; returns the manifest.
fn push_image(host: &str, auth: &[(&str, String)], repo: &str, tag: &str) -> String {
    let config =
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
    let layer = b"not really a layer";
    let config_digest = push_blob(host, auth, repo, config);
    let layer_digest = push_blob(host, auth, repo, layer);
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"{MANIFEST}","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{config_digest}","size":{}}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{layer_digest}","size":{}}}]}}"#,
        config.len(),
        layer.len()
    );
    let mut headers = hdrs(auth);
    headers.push(("Content-Type", MANIFEST));
    let put = request(
        host,
        "PUT",
        &format!("/v2/{repo}/manifests/{tag}"),
        &headers,
        manifest.as_bytes(),
    )
    .unwrap();
    assert_eq!(put.status, 201, "{put:?}");
    manifest
}

fn get(host: &str, path: &str, auth: &[(&str, String)]) -> Response {
    request(host, "GET", path, &hdrs(auth), b"").unwrap()
}

/// The bytes `n` of a test blob.
fn blob_of(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i % 251) as u8).collect()
}

#[test]
fn registry_stores_and_serves() {
    let registry = Registry::start().unwrap();
    let host = registry.host();
    assert_eq!(get(&host, "/v2/", &[]).status, 200, "{}", registry.log());
    let manifest = push_image(&host, &[], "test/img", "1");
    let accept = [("Accept", MANIFEST.to_string())];
    let back = get(&host, "/v2/test/img/manifests/1", &accept);
    assert_eq!(back.status, 200);
    assert_eq!(String::from_utf8(back.body).unwrap(), manifest);

    let data = blob_of(100_000);
    let digest = push_blob(&host, &[], "test/img", &data);
    let blob = get(&host, &format!("/v2/test/img/blobs/{digest}"), &[]);
    assert_eq!(blob.status, 200);
    assert_eq!(blob.body, data);

    // the blob is where blob_path says; corrupting it there changes what the registry serves
    let path = registry.blob_path(digest.trim_start_matches("sha256:"));
    assert_eq!(std::fs::read(&path).unwrap(), data);
    assert!(path.starts_with(registry.storage()));
    std::fs::write(&path, b"corrupt").unwrap();
    let blob = get(&host, &format!("/v2/test/img/blobs/{digest}"), &[]);
    assert_eq!(blob.body, b"corrupt");
}

#[test]
fn htpasswd_registry_wants_credentials() {
    let registry = Registry::start_with_htpasswd("alice", "s3cret").unwrap();
    let host = registry.host();
    let anonymous = get(&host, "/v2/", &[]);
    assert_eq!(anonymous.status, 401);
    assert!(anonymous
        .header("www-authenticate")
        .unwrap()
        .starts_with("Basic"));
    let wrong = [("Authorization", basic_auth("alice", "wrong"))];
    assert_eq!(get(&host, "/v2/", &wrong).status, 401);
    let right = [("Authorization", basic_auth("alice", "s3cret"))];
    assert_eq!(get(&host, "/v2/", &right).status, 200, "{}", registry.log());
    push_image(&host, &right, "private/img", "v1");
    assert_eq!(get(&host, "/v2/private/img/manifests/v1", &[]).status, 401);
}

/// Asks the proxy's token endpoint for a token as `user` / `password`.
fn token(proxy: &AuthProxy, user: &str, password: &str) -> Response {
    let auth = [("Authorization", basic_auth(user, password))];
    let path = "/token?service=berth-test&scope=repository:test/img:pull,push";
    get(&proxy.host(), path, &auth)
}

#[test]
fn auth_proxy_issues_tokens_and_forwards() {
    let registry = Registry::start().unwrap();
    let proxy = AuthProxy::start(&registry, "bob", "pw").unwrap();
    let host = proxy.host();

    let root = get(&host, "/v2/", &[]);
    assert_eq!(root.status, 401);
    let expected = format!(r#"Bearer realm="http://{host}/token",service="berth-test""#);
    assert_eq!(root.header("www-authenticate").unwrap(), expected);
    let manifest = get(&host, "/v2/test/img/manifests/1", &[]);
    assert_eq!(
        manifest.header("www-authenticate").unwrap(),
        format!(r#"{expected},scope="repository:test/img:pull,push""#)
    );

    assert_eq!(token(&proxy, "bob", "nope").status, 401);
    assert_eq!(get(&host, "/token?service=berth-test", &[]).status, 401);
    let issued = token(&proxy, "bob", "pw");
    assert_eq!(issued.status, 200);
    let json: serde_json::Value = serde_json::from_slice(&issued.body).unwrap();
    let token = json["token"].as_str().unwrap().to_string();
    assert_eq!(json["access_token"], json["token"]);
    assert_eq!(json["expires_in"], 300);

    let bad = [("Authorization", "Bearer not-a-token".to_string())];
    assert_eq!(get(&host, "/v2/", &bad).status, 401);
    let auth = [("Authorization", format!("Bearer {token}"))];
    assert_eq!(get(&host, "/v2/", &auth).status, 200);

    // upload locations point at the proxy
    let post = request(
        &host,
        "POST",
        "/v2/test/img/blobs/uploads/",
        &hdrs(&auth),
        b"",
    )
    .unwrap();
    assert_eq!(post.status, 202);
    let location = post.header("location").unwrap().to_string();
    assert!(
        location.starts_with(&format!("http://{host}/v2/test/img/blobs/uploads/")),
        "{location}"
    );

    // a chunked PATCH is forwarded whole
    let data = blob_of(300_000);
    let digest = sha256(&data);
    let path = location.trim_start_matches(&format!("http://{host}"));
    let mut stream = TcpStream::connect(&host).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    write!(
        stream,
        "PATCH {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    .unwrap();
    for chunk in data.chunks(70_000) {
        write!(stream, "{:x}\r\n", chunk.len()).unwrap();
        stream.write_all(chunk).unwrap();
        stream.write_all(b"\r\n").unwrap();
    }
    stream.write_all(b"0\r\n\r\n").unwrap();
    let mut reader = BufReader::new(&stream);
    let mut status = String::new();
    reader.read_line(&mut status).unwrap();
    assert!(status.starts_with("HTTP/1.1 202"), "{status}");
    let mut next = None;
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        if line.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            if name.eq_ignore_ascii_case("location") {
                next = Some(value.trim().to_string());
            }
        }
    }
    let next = next.unwrap();
    let sep = if next.contains('?') { '&' } else { '?' };
    let put = request(
        &host,
        "PUT",
        &format!("{next}{sep}digest={digest}"),
        &hdrs(&auth),
        b"",
    )
    .unwrap();
    assert_eq!(put.status, 201, "{put:?}");

    let blob = get(&host, &format!("/v2/test/img/blobs/{digest}"), &auth);
    assert_eq!(blob.body, data);
    assert_eq!(
        get(
            &registry.host(),
            &format!("/v2/test/img/blobs/{digest}"),
            &[]
        )
        .body,
        data
    );
    assert_eq!(proxy.blob_gets(), 1);
}

/// GET of `path` on `host` over a raw connection: the status line and the body bytes that came
/// before the connection closed.
fn raw_get(host: &str, path: &str, extra: &str) -> (String, Option<u64>, Vec<u8>) {
    let mut stream = TcpStream::connect(host).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {host}\r\n{extra}\r\n").unwrap();
    let mut reader = BufReader::new(stream);
    let mut status = String::new();
    reader.read_line(&mut status).unwrap();
    let mut length = None;
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        if line.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().ok();
            }
        }
    }
    let mut body = Vec::new();
    match length {
        // keep-alive: read no more than the announced body (or until the proxy closes)
        Some(n) => {
            let _ = reader.take(n).read_to_end(&mut body);
        }
        None => {
            let _ = reader.read_to_end(&mut body);
        }
    }
    (status.trim().to_string(), length, body)
}

#[test]
fn proxy_truncates_blob_downloads() {
    let registry = Registry::start().unwrap();
    let data = blob_of(1 << 20);
    let digest = push_blob(&registry.host(), &[], "test/big", &data);
    let proxy = AuthProxy::without_auth(&registry).unwrap();
    let path = format!("/v2/test/big/blobs/{digest}");

    proxy.truncate_blobs_after(Some(1000));
    let (status, length, body) = raw_get(&proxy.host(), &path, "");
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
    assert_eq!(length, Some(data.len() as u64));
    assert_eq!(body, data[..1000]);
    assert!(request(&proxy.host(), "GET", &path, &[], b"").is_err());
    // manifests and other requests are not cut
    assert_eq!(get(&proxy.host(), "/v2/", &[]).status, 200);

    proxy.truncate_blobs_after(None);
    let (status, _, body) = raw_get(&proxy.host(), &path, "Range: bytes=1000-\r\n");
    assert!(status.starts_with("HTTP/1.1 206"), "{status}");
    assert_eq!(body, data[1000..]);
    assert_eq!(proxy.blob_gets(), 3);
    assert_eq!(proxy.ranges(), vec!["bytes=1000-".to_string()]);
}

#[test]
fn proxy_throttles_blob_downloads() {
    let registry = Registry::start().unwrap();
    let data = blob_of(100_000);
    let digest = push_blob(&registry.host(), &[], "test/slow", &data);
    let proxy = AuthProxy::without_auth(&registry).unwrap();
    let path = format!("/v2/test/slow/blobs/{digest}");
    proxy.throttle(Some(200_000));
    let started = Instant::now();
    assert_eq!(get(&proxy.host(), &path, &[]).body, data);
    let slow = started.elapsed();
    assert!(slow >= Duration::from_millis(400), "{slow:?}");
    proxy.throttle(None);
    let started = Instant::now();
    assert_eq!(get(&proxy.host(), &path, &[]).body, data);
    assert!(
        started.elapsed() < slow / 2,
        "{:?} vs {slow:?}",
        started.elapsed()
    );
}

#[test]
fn proxy_drop_ends_a_stuck_download() {
    let registry = Registry::start().unwrap();
    let data = blob_of(1 << 20);
    let digest = push_blob(&registry.host(), &[], "test/stuck", &data);
    let proxy = AuthProxy::without_auth(&registry).unwrap();
    proxy.throttle(Some(1000));
    let host = proxy.host();
    let path = format!("/v2/test/stuck/blobs/{digest}");
    let client = std::thread::spawn(move || raw_get(&host, &path, "").2.len());
    std::thread::sleep(Duration::from_millis(300));
    let started = Instant::now();
    drop(proxy);
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(client.join().unwrap() < data.len());
}

/// Writes `data` as blob `sha256:<hex>` of the layout `dir`; returns its descriptor fields.
fn layout_blob(dir: &Path, data: &[u8]) -> (String, usize) {
    let digest = sha256(data);
    let hex = digest.trim_start_matches("sha256:");
    std::fs::write(dir.join("blobs/sha256").join(hex), data).unwrap();
    (digest, data.len())
}

/// A one-layer OCI image layout (a gzip tar of /hello), tagged `1`.
fn make_layout(dir: &Path) {
    std::fs::create_dir_all(dir.join("blobs/sha256")).unwrap();
    let mut tar = tar::Builder::new(Vec::new());
    let content = b"hello from berth\n";
    let mut header = tar::Header::new_gnu();
    header.set_size(content.len() as u64);
    header.set_mode(0o644);
    header.set_cksum();
    tar.append_data(&mut header, "hello", &content[..]).unwrap();
    let tar = tar.into_inner().unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&tar).unwrap();
    let (layer, layer_size) = layout_blob(dir, &gz.finish().unwrap());
    let config = format!(
        r#"{{"architecture":"amd64","os":"linux","config":{{"Cmd":["/hello"]}},"rootfs":{{"type":"layers","diff_ids":["{}"]}}}}"#,
        sha256(&tar)
    );
    let (config, config_size) = layout_blob(dir, config.as_bytes());
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"{MANIFEST}","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{config}","size":{config_size}}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"{layer}","size":{layer_size}}}]}}"#
    );
    let (manifest, manifest_size) = layout_blob(dir, manifest.as_bytes());
    let index = format!(
        r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"{MANIFEST}","digest":"{manifest}","size":{manifest_size},"annotations":{{"org.opencontainers.image.ref.name":"1"}}}}]}}"#
    );
    std::fs::write(dir.join("index.json"), index).unwrap();
    std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
}

fn skopeo(args: &[&str]) -> berth_tests::Output {
    run_with_timeout(Command::new("skopeo").args(args), Duration::from_secs(60)).ok()
}

#[test]
fn skopeo_pushes_and_inspects() {
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("layout");
    make_layout(&layout);
    let src = format!("oci:{}:1", layout.display());

    let registry = Registry::start().unwrap();
    let dest = format!("docker://{}/test/img:1", registry.host());
    skopeo(&["copy", "--dest-tls-verify=false", &src, &dest]);
    let out = skopeo(&["inspect", "--tls-verify=false", &dest]);
    let json: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(json["Layers"].as_array().unwrap().len(), 1);

    // and through the token proxy, as a client with credentials
    let proxy = AuthProxy::start(&registry, "carol", "pw").unwrap();
    let dest = format!("docker://{}/test/other:2", proxy.host());
    skopeo(&[
        "copy",
        "--dest-tls-verify=false",
        "--dest-creds",
        "carol:pw",
        &src,
        &dest,
    ]);
    let out = skopeo(&[
        "inspect",
        "--tls-verify=false",
        "--creds",
        "carol:pw",
        &dest,
    ]);
    let json: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(json["Layers"].as_array().unwrap().len(), 1);
    let refused = run_with_timeout(
        Command::new("skopeo").args([
            "inspect",
            "--tls-verify=false",
            "--creds",
            "carol:bad",
            &dest,
        ]),
        Duration::from_secs(60),
    );
    assert!(!refused.status.success());
}
