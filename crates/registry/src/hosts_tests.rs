#![allow(clippy::unwrap_used)]

use super::*;

fn parsed(text: &str) -> Vec<Endpoint> {
    parse(
        text,
        Path::new("/etc/berth/certs.d/reg.io"),
        Path::new("hosts.toml"),
    )
    .unwrap()
}

#[test]
fn hosts_keep_the_files_order_then_the_server() {
    let list = parsed(
        r#"
server = "https://reg.io"
[host."http://zeta.lan:5000"]
  capabilities = ["pull"]
[host."https://alpha.lan"]
[host."mirror.lan/sub/"]
  capabilities = ["pull", "resolve"]
"#,
    );
    let urls: Vec<String> = list
        .iter()
        .map(|e| format!("{}{}", e.origin(), e.path))
        .collect();
    assert_eq!(
        urls,
        [
            "http://zeta.lan:5000/v2",
            "https://alpha.lan/v2",
            "https://mirror.lan/sub/v2",
            "https://reg.io/v2"
        ]
    );
    assert_eq!(
        list[0].capabilities,
        Capabilities {
            pull: true,
            resolve: false,
            push: false
        }
    );
    // No capabilities: all three.
    assert_eq!(list[1].capabilities, Capabilities::ALL);
    assert_eq!(list[3].capabilities, Capabilities::ALL);
    assert!(list[2].capabilities.has(Capabilities {
        pull: true,
        resolve: true,
        push: false
    }));
    assert!(!list[2].capabilities.has(Capabilities {
        push: true,
        ..Default::default()
    }));
}

#[test]
fn order_is_the_files_even_against_the_alphabet() {
    let names: Vec<String> = (0..12).rev().map(|i| format!("h{i:02}.lan")).collect();
    let text: String = names
        .iter()
        .map(|n| format!("[host.\"http://{n}\"]\n"))
        .collect();
    let hosts: Vec<String> = parsed(&text).into_iter().map(|e| e.host).collect();
    assert_eq!(&hosts[..12], &names[..]);
    // The server, unset: filled in later.
    assert_eq!(hosts[12], "");
}

#[test]
fn relative_paths_are_the_files_directory() {
    let list = parsed(
        r#"
[host."https://m.lan"]
  ca = ["m.crt", "/abs/ca.pem"]
  client = [["c.cert", "c.key"], ["both.pem", ""]]
  skip_verify = true
  [host."https://m.lan".header]
    x-one = "1"
    x-two = ["a", "b"]
[host."https://n.lan"]
  ca = "n.crt"
  client = "n.pem"
"#,
    );
    let dir = Path::new("/etc/berth/certs.d/reg.io");
    assert_eq!(
        list[0].ca,
        [dir.join("m.crt"), PathBuf::from("/abs/ca.pem")]
    );
    assert_eq!(
        list[0].client,
        [
            (dir.join("c.cert"), Some(dir.join("c.key"))),
            (dir.join("both.pem"), None)
        ]
    );
    assert_eq!(list[0].skip_verify, Some(true));
    assert_eq!(
        list[0].header,
        [
            ("x-one".to_string(), vec!["1".to_string()]),
            ("x-two".to_string(), vec!["a".to_string(), "b".to_string()])
        ]
    );
    assert_eq!(list[1].ca, [dir.join("n.crt")]);
    assert_eq!(list[1].client, [(dir.join("n.pem"), None)]);
    assert!(list[1].has_tls_settings());
}

#[test]
fn override_path_replaces_v2() {
    let list = parsed(
        r#"
[host."http://a.lan:1/custom/root/"]
  override_path = true
[host."http://b.lan:1/custom/root"]
[host."http://c.lan:1/v2"]
[host."http://d.lan:1"]
  override_path = true
"#,
    );
    let paths: Vec<&str> = list.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(paths, ["/custom/root", "/custom/root/v2", "/v2", "", ""]);
}

#[test]
fn unknown_keys_are_ignored_and_bad_files_are_errors() {
    let list = parsed(
        r#"
dial_timeout = "1s"
something = 5
[host."http://a.lan"]
  proxy = "http://p:1"
  future = { x = 1 }
"#,
    );
    assert_eq!(list.len(), 2);
    for bad in [
        "[host.\"http://a.lan\"\ncapabilities = [",
        "server = 5",
        "[host.\"http://a.lan\"]\ncapabilities = [\"fly\"]",
        "[host.\"http://a.lan\"]\nca = 5",
        "[host.\"http://a.lan\"]\nskip_verify = \"yes\"",
        "[host.\"http://a.lan\"]\nclient = [[\"only-one\"]]",
        "host = 1",
    ] {
        let err = parse(bad, Path::new("/d"), Path::new("/d/hosts.toml")).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("registry configuration /d/hosts.toml: "),
            "{bad:?}: {err}"
        );
    }
}

#[test]
fn directories_are_looked_up_as_containerd_does() {
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    // Nothing: the default server.
    let list = endpoints(Some(r), "reg.io:5000", &[]).unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(
        format!("{}{}", list[0].origin(), list[0].path),
        "https://reg.io:5000/v2"
    );
    assert!(list[0].default_server);
    let list = endpoints(Some(r), "docker.io", &[]).unwrap();
    assert_eq!(list[0].origin(), "https://registry-1.docker.io");
    // _default applies to hosts without a directory of their own.
    std::fs::create_dir(r.join("_default")).unwrap();
    std::fs::write(
        r.join("_default/hosts.toml"),
        "[host.\"http://mirror.lan\"]\ncapabilities = [\"pull\", \"resolve\"]\n",
    )
    .unwrap();
    let list = endpoints(Some(r), "quay.io", &[]).unwrap();
    let hosts: Vec<&str> = list.iter().map(|e| e.host.as_str()).collect();
    assert_eq!(hosts, ["mirror.lan", "quay.io"]);
    // A host's directory with only certificates: not _default; its .crt are CAs of the server.
    std::fs::create_dir(r.join("reg.io_5000_")).unwrap();
    std::fs::write(r.join("reg.io_5000_/ca.crt"), "x").unwrap();
    let list = endpoints(Some(r), "reg.io:5000", &[]).unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].host, "reg.io:5000");
    assert_eq!(list[0].ca, [r.join("reg.io_5000_/ca.crt")]);
    // host:port too, after host_port_.
    std::fs::create_dir(r.join("other.io:81")).unwrap();
    std::fs::write(
        r.join("other.io:81/hosts.toml"),
        "server = \"http://127.0.0.1:9\"\ncapabilities = [\"pull\"]\n",
    )
    .unwrap();
    let list = endpoints(Some(r), "other.io:81", &[]).unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].origin(), "http://127.0.0.1:9");
    assert!(!list[0].default_server);
    assert!(!list[0].capabilities.push);
    // A malformed file is an error naming it.
    std::fs::write(r.join("_default/hosts.toml"), "[host").unwrap();
    let err = endpoints(Some(r), "quay.io", &[]).unwrap_err().to_string();
    assert!(err.contains("_default/hosts.toml"), "{err}");
}

#[test]
fn mirrors_go_first_for_docker_hub_only() {
    let mirrors = vec!["http://127.0.0.1:5000".to_string()];
    let list = endpoints(None, "docker.io", &mirrors).unwrap();
    let urls: Vec<String> = list
        .iter()
        .map(|e| format!("{}{}", e.origin(), e.path))
        .collect();
    assert_eq!(
        urls,
        [
            "http://127.0.0.1:5000/v2",
            "https://registry-1.docker.io/v2"
        ]
    );
    assert!(!list[0].capabilities.push && list[0].capabilities.resolve);
    assert_eq!(endpoints(None, "quay.io", &mirrors).unwrap().len(), 1);
}

#[test]
fn mirrors_are_checked_as_dockerd_checks_them() {
    assert_eq!(
        validate_mirror("https://mirror.lan").unwrap(),
        "https://mirror.lan/"
    );
    assert_eq!(
        validate_mirror("http://m.lan:5000/").unwrap(),
        "http://m.lan:5000/"
    );
    for (bad, message) in [
        (
            "mirror.lan:5000",
            "invalid mirror: no scheme specified for \"mirror.lan:5000\": must use either 'https://' or 'http://'",
        ),
        (
            "ftp://mirror.lan",
            "invalid mirror: unsupported scheme \"ftp\" in \"ftp://mirror.lan\": must use either 'https://' or 'http://'",
        ),
        (
            "http://mirror.lan/?q=foo",
            "invalid mirror: query or fragment at end of the URI \"http://mirror.lan/?q=foo\"",
        ),
    ] {
        assert_eq!(validate_mirror(bad).unwrap_err().to_string(), message);
    }
}
