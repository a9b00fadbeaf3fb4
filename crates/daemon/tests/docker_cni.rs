#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions unwrap too

//! Networks backed by CNI plugins through the real docker CLI (`docker network create --driver
//! cni -o cni.conflist=PATH`), with Debian's containernetworking-plugins (`bridge`,
//! `host-local`): containers get addresses from the conflist's subnet and its DNS, reach each
//! other, connect and disconnect; bad conflists are refused with a 400 and nothing made; and
//! removal (also after a `kill -9` of berthd) leaves no bridge or address reservation behind;
//! with `portmap` in the list, published ports answer on the host's address and removal takes
//! portmap's rules. The conflist's bridge, subnet and host-local data directory are this test
//! process's own.

mod common;

use std::io::{Read, Write};
use std::net::Ipv4Addr;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{free_port, host_address, http_get_at, portmap_rules, skip, text, Daemon};

fn plugins_missing(plugins: &[&str]) -> bool {
    let missing = !plugins
        .iter()
        .all(|p| Path::new("/usr/lib/cni").join(p).exists());
    if missing {
        eprintln!("skipped: needs containernetworking-plugins in /usr/lib/cni");
        assert!(
            std::env::var("CI").is_err(),
            "containernetworking-plugins is missing under CI"
        );
    }
    missing
}

/// A CNI world of one test: bridge `bcni<tag><pid>`, subnet `10.214.<third>.0/24`, host-local's
/// data under the daemon's directory, `extra` plugins after the bridge.
struct Cni {
    bridge: String,
    /// The subnet's first three octets (`10.214.N`).
    net: String,
    data_dir: PathBuf,
    conflist: PathBuf,
}

impl Cni {
    fn new(d: &Daemon, tag: &str, third: u32, extra: &str) -> Cni {
        let pid = std::process::id();
        let cni = Cni {
            bridge: format!("bcni{tag}{}", pid % 1_000_000),
            net: format!("10.214.{third}"),
            data_dir: d.dir.join("host-local"),
            conflist: d.dir.join("cninet.conflist"),
        };
        let text = format!(
            r#"{{"cniVersion": "1.0.0", "name": "berth-test-{pid}", "plugins": [
                {{"type": "bridge", "bridge": "{bridge}", "isGateway": true, "ipMasq": false,
                  "dns": {{"nameservers": ["{net}.53"], "search": ["cni.test"]}},
                  "ipam": {{"type": "host-local", "dataDir": "{data}", "subnet": "{net}.0/24",
                            "routes": [{{"dst": "0.0.0.0/0"}}]}}}}{extra}]}}"#,
            bridge = cni.bridge,
            net = cni.net,
            data = cni.data_dir.display(),
        );
        std::fs::write(&cni.conflist, text).unwrap();
        cni
    }

    /// The addresses host-local holds.
    fn reserved(&self) -> Vec<String> {
        let dir = self
            .data_dir
            .join(format!("berth-test-{}", std::process::id()));
        let mut ips: Vec<String> = std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|name| name.starts_with(&self.net))
            .collect();
        ips.sort();
        ips
    }
}

#[test]
fn containers_on_a_cni_network_get_its_addresses_and_reach_each_other() {
    if skip() || plugins_missing(&["bridge", "host-local"]) {
        return;
    }
    let mut d = Daemon::start();
    d.busybox("bb:local");
    let cni = Cni::new(&d, "", 100 + std::process::id() % 100, "");
    let opt = format!("cni.conflist={}", cni.conflist.display());
    d.ok(&["network", "create", "--driver", "cni", "-o", &opt, "cninet"]);
    // The record keeps the conflist's content.
    std::fs::remove_file(&cni.conflist).unwrap();
    let shown = d.ok(&[
        "network",
        "inspect",
        "-f",
        "{{.Driver}} {{.IPAM.Driver}} {{range .IPAM.Config}}{{.Subnet}} {{.Gateway}}{{end}} {{index .Options \"cni.conflist\"}}",
        "cninet",
    ]);
    assert_eq!(
        shown.trim(),
        format!(
            "cni host-local {0}.0/24 {0}.1 {1}",
            cni.net,
            cni.conflist.display()
        )
    );
    let listed = d.ok(&[
        "network",
        "ls",
        "--filter",
        "driver=cni",
        "--format",
        "{{.Name}} {{.Driver}}",
    ]);
    assert_eq!(listed.trim(), "cninet cni");

    // A container gets an address of the subnet, the result's DNS, and itself in /etc/hosts.
    let out = d.ok(&[
        "run",
        "--rm",
        "--network",
        "cninet",
        "--hostname",
        "box",
        "bb:local",
        "sh",
        "-c",
        "ip -4 addr show eth0; cat /etc/resolv.conf /etc/hosts",
    ]);
    assert!(out.contains(&format!("inet {}.", cni.net)), "{out}");
    assert!(out.contains(&format!("nameserver {}.53", cni.net)), "{out}");
    assert!(out.contains("search cni.test"), "{out}");
    assert!(
        out.lines()
            .any(|l| l.starts_with(&format!("{}.", cni.net)) && l.ends_with("\tbox")),
        "{out}"
    );
    assert!(cni.reserved().is_empty(), "--rm gave the address back");

    // Two containers reach each other by address.
    d.ok(&[
        "run",
        "-d",
        "--name",
        "peer",
        "--network",
        "cninet",
        "bb:local",
        "sleep",
        "300",
    ]);
    let a = d.ip_on("peer", "cninet");
    assert!(a.starts_with(&format!("{}.", cni.net)), "{a}");
    d.ok(&[
        "exec",
        "-d",
        "peer",
        "sh",
        "-c",
        "echo pong | nc -l -p 7000",
    ]);
    let answer = d.nc_from("cninet", &a, "7000", "pong");
    assert_eq!(answer.trim(), "pong");
    let members = d.ok(&[
        "network",
        "inspect",
        "-f",
        "{{range .Containers}}{{.Name}} {{.IPv4Address}}{{end}}",
        "cninet",
    ]);
    assert_eq!(members.trim(), format!("peer {a}/24"));

    // Published ports are refused; removal while in use too.
    let out = d.docker(&[
        "run",
        "--rm",
        "--network",
        "cninet",
        "-p",
        "8080:80",
        "bb:local",
        "true",
    ]);
    assert!(
        text(&out)
            .1
            .contains("port publishing is not supported on cni network cninet"),
        "{}",
        text(&out).1
    );
    let out = d.docker(&["network", "rm", "cninet"]);
    assert!(
        text(&out).1.contains("has active endpoints"),
        "{}",
        text(&out).1
    );

    // connect and disconnect a running container of the default bridge.
    d.ok(&["run", "-d", "--name", "other", "bb:local", "sleep", "300"]);
    d.ok(&["network", "connect", "cninet", "other"]);
    let b = d.ip_on("other", "cninet");
    let eth1 = d.ok(&["exec", "other", "ip", "-4", "addr", "show", "eth1"]);
    assert!(eth1.contains(&format!("inet {b}/24")), "{eth1}");
    let out = d.ok(&["exec", "other", "ping", "-c", "1", "-W", "2", &a]);
    assert!(out.contains("1 packets received"), "{out}");
    assert_eq!(cni.reserved().len(), 2, "{:?}", cni.reserved());
    d.ok(&["network", "disconnect", "cninet", "other"]);
    let out = d.docker(&["exec", "other", "ip", "link", "show", "eth1"]);
    assert!(!out.status.success(), "eth1 is still there");
    assert_eq!(cni.reserved(), vec![a.clone()]);

    // After a kill -9 of berthd, the cached result lets DEL run: removal leaves nothing, no
    // reservation, no bridge.
    d.kill9();
    d.spawn();
    assert_eq!(d.ip_on("peer", "cninet"), a);
    d.ok(&["rm", "-f", "peer", "other"]);
    assert!(cni.reserved().is_empty(), "{:?}", cni.reserved());
    d.ok(&["network", "rm", "cninet"]);
    assert!(!Path::new("/sys/class/net").join(&cni.bridge).exists());
    assert!(d
        .ok(&["network", "ls", "-q", "--filter", "driver=cni"])
        .is_empty());
}

#[test]
fn published_ports_on_a_cni_network_go_through_portmap() {
    if skip() || plugins_missing(&["bridge", "host-local", "portmap"]) {
        return;
    }
    let mut d = Daemon::start();
    d.busybox("bb:local");
    let portmap = r#", {"type": "portmap", "capabilities": {"portMappings": true}, "snat": true}"#;
    let cni = Cni::new(&d, "p", 200 + std::process::id() % 50, portmap);
    let opt = format!("cni.conflist={}", cni.conflist.display());
    d.ok(&["network", "create", "--driver", "cni", "-o", &opt, "cninet"]);

    // The daemon's drop removes the container: its DEL takes portmap's rules.
    let port = free_port();
    let id = d
        .ok(&[
            "run",
            "-d",
            "--name",
            "web",
            "--network",
            "cninet",
            "-p",
            &format!("{port}:80"),
            "bb:local",
            "sh",
            "-c",
            "mkdir -p /www && echo hello > /www/index.html && exec httpd -f -p 80 -h /www",
        ])
        .trim()
        .to_string();
    let body = http_get_at(host_address(), port).expect("no answer on the host's address");
    assert!(body.ends_with("hello\n"), "{body}");
    let gateway: Ipv4Addr = format!("{}.1", cni.net).parse().unwrap();
    let body = http_get_at(gateway, port).expect("no answer on the gateway");
    assert!(body.ends_with("hello\n"), "{body}");
    assert_eq!(
        d.ok(&["port", "web", "80"]).trim(),
        format!("0.0.0.0:{port}")
    );
    let ps = d.ok(&["ps", "--format", "{{.Ports}}", "--filter", "name=web"]);
    assert_eq!(ps.trim(), format!("0.0.0.0:{port}->80/tcp"));
    assert!(!portmap_rules(&id).is_empty());

    // The port is taken: another container cannot have it, and its failed start runs no
    // plugin.
    let out = d.docker(&[
        "run",
        "--rm",
        "--network",
        "cninet",
        "-p",
        &format!("{port}:80"),
        "bb:local",
        "true",
    ]);
    assert!(
        text(&out).1.contains("port is already allocated"),
        "{}",
        text(&out).1
    );

    // After a kill -9 of berthd, the record gives DEL its mappings: rm takes the rules.
    d.kill9();
    d.spawn();
    assert_eq!(
        d.ok(&["port", "web", "80"]).trim(),
        format!("0.0.0.0:{port}")
    );
    d.ok(&["rm", "-f", "web"]);
    assert_eq!(portmap_rules(&id), Vec::<String>::new());
    assert!(cni.reserved().is_empty(), "{:?}", cni.reserved());
    // The port is free again.
    d.ok(&[
        "run",
        "--rm",
        "--network",
        "cninet",
        "-p",
        &format!("{port}:80"),
        "bb:local",
        "true",
    ]);
    d.ok(&["network", "rm", "cninet"]);
    assert!(!Path::new("/sys/class/net").join(&cni.bridge).exists());
}

/// `POST /networks/create` with `body`: the status code and the body.
fn create_raw(d: &Daemon, body: &str) -> (u16, String) {
    let mut s = UnixStream::connect(&d.socket).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    write!(
        s,
        "POST /v1.41/networks/create HTTP/1.0\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut reply = String::new();
    s.read_to_string(&mut reply).unwrap();
    let code = reply
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (code, reply)
}

#[test]
fn bad_cni_conflists_are_refused_and_nothing_is_made() {
    if skip() || plugins_missing(&["bridge", "host-local"]) {
        return;
    }
    let d = Daemon::start();
    let before = d.ok(&["network", "ls", "-q"]);
    let write = |name: &str, content: &str| {
        let path = d.dir.join(name);
        std::fs::write(&path, content).unwrap();
        path.display().to_string()
    };
    let unknown = write(
        "unknown.conflist",
        r#"{"cniVersion":"1.0.0","name":"u","plugins":[{"type":"no-such-plugin"}]}"#,
    );
    let bad_json = write("bad.conflist", r#"{"cniVersion": "1.0.0", "name": "#);
    let missing = d.dir.join("missing.conflist").display().to_string();
    for (args, words) in [
        (vec![], "the cni driver needs the option cni.conflist=PATH"),
        (
            vec!["-o", "cni.conflist=rel.conflist"],
            "not an absolute path",
        ),
        (
            vec!["-o", &format!("cni.conflist={missing}")],
            "reading the cni conflist",
        ),
        (
            vec!["-o", &format!("cni.conflist={bad_json}")],
            "invalid cni conflist: ",
        ),
        (
            vec!["-o", &format!("cni.conflist={unknown}")],
            "cni plugin \"no-such-plugin\" not found in /usr/lib/cni:/opt/cni/bin",
        ),
        (
            vec![
                "--subnet",
                "10.214.99.0/24",
                "-o",
                &format!("cni.conflist={unknown}"),
            ],
            "not supported with the cni driver",
        ),
    ] {
        let mut all = vec!["network", "create", "--driver", "cni"];
        all.extend(args.iter().copied());
        all.push("badnet");
        let out = d.docker(&all);
        assert_eq!(out.status.code(), Some(1), "{all:?}");
        let err = text(&out).1;
        assert!(err.starts_with("Error response from daemon: "), "{err}");
        assert!(err.contains(words), "{all:?}: {err}");
    }
    let body =
        format!(r#"{{"Name":"badnet","Driver":"cni","Options":{{"cni.conflist":"{unknown}"}}}}"#);
    let (code, reply) = create_raw(&d, &body);
    assert_eq!(code, 400, "{reply}");
    assert!(reply.contains(r#"{"message":"cni plugin"#), "{reply}");
    assert_eq!(d.ok(&["network", "ls", "-q"]), before);
    let records = std::fs::read_dir(d.dir.join("data/network/networks"))
        .unwrap()
        .count();
    assert_eq!(records, 1, "only the default bridge's record");
}
