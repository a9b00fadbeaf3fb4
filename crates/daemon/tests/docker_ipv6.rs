#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions unwrap too

//! IPv6 through the real docker CLI: `network create --ipv6 --subnet`, `--ip6`, addresses and
//! the default route inside the container, ping6 and TCP between containers, AAAA answers of
//! the embedded DNS server, ports published on IPv6 (Berth's `ip6` table), the inspect fields,
//! and the default bridge with daemon.json's `ipv6` and `fixed-cidr-v6`.

mod common;

use std::io::{Read, Write};
use std::net::{Ipv6Addr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::{free_port, skip, text, Daemon};

/// An IPv6 /64 of this test process's own (parallel test processes make networks too), as
/// `fd00:XXXX:N::`.
fn prefix(n: u16) -> String {
    format!("fd00:{:x}:{n}::", 0x1000 + std::process::id() % 0xe000)
}

/// `docker inspect -f FORMAT name`, trimmed.
fn inspect(d: &Daemon, format: &str, name: &str) -> String {
    d.ok(&["inspect", "-f", format, name]).trim().to_string()
}

/// Runs `cmd` in container `name` until it succeeds (20 s at most); its stdout.
fn exec_until_ok(d: &Daemon, name: &str, cmd: &[&str]) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut args = vec!["exec", name];
    args.extend_from_slice(cmd);
    loop {
        let out = d.docker(&args);
        if out.status.success() {
            return text(&out).0;
        }
        assert!(
            Instant::now() < deadline,
            "docker {args:?}: {:?}",
            text(&out)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// An HTTP GET of `/i` on `addr`, tried until it answers or 20 s pass.
fn http_get(addr: SocketAddr) -> Option<String> {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_secs(2)) {
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let sent = s.write_all(b"GET /i HTTP/1.0\r\nHost: x\r\n\r\n");
            let mut body = String::new();
            if sent.is_ok() && s.read_to_string(&mut body).is_ok() && !body.is_empty() {
                return Some(body);
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    None
}

const HTTPD: &str = "echo hi > /tmp/i; exec httpd -f -p 80 -h /tmp";

#[test]
fn an_ipv6_network_gives_addresses_routes_names_and_published_ports() {
    if skip() {
        return;
    }
    let d = Daemon::start();
    d.busybox("bb:local");
    let p = prefix(1);
    let subnet = format!("{p}/64");
    d.ok(&["network", "create", "--ipv6", "--subnet", &subnet, "v6net"]);
    assert_eq!(inspect(&d, "{{.EnableIPv6}}", "v6net"), "true");
    let config = inspect(&d, "{{json .IPAM.Config}}", "v6net");
    assert!(
        config.contains(&format!(r#""Subnet":"{subnet}","Gateway":"{p}1""#)),
        "{config}"
    );

    d.ok(&[
        "run",
        "-d",
        "--name",
        "web",
        "--network",
        "v6net",
        "bb:local",
        "sh",
        "-c",
        HTTPD,
    ]);
    let fixed = format!("{p}99");
    d.ok(&[
        "run",
        "-d",
        "--name",
        "client",
        "--network",
        "v6net",
        "--ip6",
        &fixed,
        "bb:local",
        "sleep",
        "300",
    ]);
    // Inspect: the container's IPv6 fields, on the network and (API < 1.44) at the top.
    let web6 = inspect(
        &d,
        "{{.NetworkSettings.Networks.v6net.GlobalIPv6Address}}",
        "web",
    );
    assert_eq!(web6, format!("{p}2"));
    let net = inspect(&d, "{{json .NetworkSettings.Networks.v6net}}", "client");
    for want in [
        format!(r#""IPv6Gateway":"{p}1""#),
        format!(r#""GlobalIPv6Address":"{fixed}""#),
        r#""GlobalIPv6PrefixLen":64"#.to_string(),
        format!(r#""IPv6Address":"{fixed}""#),
    ] {
        assert!(net.contains(&want), "{want} in {net}");
    }
    let members = inspect(&d, "{{json .Containers}}", "v6net");
    assert!(members.contains(&format!("{fixed}/64")), "{members}");

    // Inside: the address, the default route, the peer over ICMPv6 and TCP, its AAAA name.
    let addr = d.ok(&["exec", "client", "ip", "-6", "addr", "show", "eth0"]);
    assert!(addr.contains(&format!("inet6 {fixed}/64")), "{addr}");
    let hosts = d.ok(&["exec", "client", "cat", "/etc/hosts"]);
    assert!(hosts.contains(&format!("\n{fixed}\t")), "{hosts}");
    let routes = d.ok(&["exec", "client", "ip", "-6", "route"]);
    assert!(
        routes.contains(&format!("default via {p}1 dev eth0")),
        "{routes}"
    );
    exec_until_ok(&d, "client", &["ping6", "-c", "1", "-W", "2", &web6]);
    let got = exec_until_ok(
        &d,
        "client",
        &["wget", "-qO-", &format!("http://[{web6}]/i")],
    );
    assert_eq!(got.trim(), "hi");
    let answer = d.ok(&["exec", "client", "nslookup", "-type=aaaa", "web"]);
    assert!(answer.contains(&web6), "{answer}");
    let answer = d.ok(&["exec", "client", "nslookup", "-type=a", "web"]);
    assert!(!answer.contains(&web6), "{answer}");

    // A published port: on 0.0.0.0 and on ::, with one host port; DNATed by the ip6 table.
    let port = free_port().to_string();
    d.ok(&[
        "run",
        "-d",
        "--name",
        "pub",
        "--network",
        "v6net",
        "-p",
        &format!("{port}:80"),
        "bb:local",
        "sh",
        "-c",
        HTTPD,
    ]);
    let ports = d.ok(&["port", "pub", "80"]);
    assert!(ports.contains(&format!("0.0.0.0:{port}")), "{ports}");
    assert!(ports.contains(&format!("[::]:{port}")), "{ports}");
    let table = String::from_utf8_lossy(
        &std::process::Command::new("nft")
            .args(["list", "table", "ip6", &d.table])
            .output()
            .unwrap()
            .stdout,
    )
    .into_owned();
    assert!(
        table.contains(&format!("ip6 saddr {subnet} oifname != ")),
        "{table}"
    );
    let gateway: Ipv6Addr = format!("{p}1").parse().unwrap();
    let port: u16 = port.parse().unwrap();
    let body = http_get(SocketAddr::from((gateway, port))).unwrap_or_default();
    assert!(body.ends_with("hi\n"), "{body:?}");
    // Gone with the container.
    d.ok(&["rm", "-f", "pub"]);
    let table = String::from_utf8_lossy(
        &std::process::Command::new("nft")
            .args(["list", "table", "ip6", &d.table])
            .output()
            .unwrap()
            .stdout,
    )
    .into_owned();
    assert!(!table.contains(&format!(" . {port} :")), "{table}");
    assert!(!table.contains(&format!("{port} : ")), "{table}");
}

#[test]
fn ipv6_requests_get_dockers_errors() {
    if skip() {
        return;
    }
    let d = Daemon::start();
    d.busybox("bb:local");
    let p = prefix(2);
    // A chosen IPv6 subnet takes no --ip6, nor does a network without IPv6.
    d.ok(&["network", "create", "--ipv6", "chosen"]);
    let config = inspect(&d, "{{json .IPAM.Config}}", "chosen");
    assert!(config.contains(r#""Subnet":"fd"#), "{config}");
    let out = d.docker(&[
        "run",
        "--rm",
        "--network",
        "chosen",
        "--ip6",
        &format!("{p}5"),
        "bb:local",
        "true",
    ]);
    assert!(!out.status.success());
    assert!(
        text(&out).1.contains(
            "user specified IP address is supported only when connecting to networks with user configured subnets"
        ),
        "{:?}",
        text(&out)
    );
    d.ok(&[
        "network",
        "create",
        "--subnet",
        &format!("{p}/64"),
        "--ipv6",
        "v6",
    ]);
    let out = d.docker(&[
        "run",
        "--rm",
        "--network",
        "v6",
        "--ip6",
        "fd99::5",
        "bb:local",
        "true",
    ]);
    assert!(
        text(&out)
            .1
            .contains("no configured subnet or ip-range contain the IP address fd99::5"),
        "{:?}",
        text(&out)
    );
    // The same subnet twice.
    let out = d.docker(&[
        "network",
        "create",
        "--ipv6",
        "--subnet",
        &format!("{p}/64"),
        "again",
    ]);
    assert!(
        text(&out)
            .1
            .contains("Pool overlaps with other one on this address space"),
        "{:?}",
        text(&out)
    );
}

#[test]
fn the_default_bridge_has_ipv6_with_daemon_json() {
    if skip() {
        return;
    }
    let p = prefix(3);
    let cidr = format!("{p}/64");
    let d = Daemon::start_with(|dir| {
        let config = serde_json::json!({"ipv6": true, "fixed-cidr-v6": cidr});
        std::fs::write(dir.join("daemon.json"), config.to_string()).unwrap();
    });
    d.busybox("bb:local");
    assert_eq!(inspect(&d, "{{.EnableIPv6}}", "bridge"), "true");
    let out = d.ok(&[
        "run", "--rm", "bb:local", "ip", "-6", "addr", "show", "eth0",
    ]);
    assert!(out.contains(&format!("inet6 {p}2/64")), "{out}");
    d.ok(&["run", "-d", "--name", "cc", "bb:local", "sleep", "300"]);
    // The top-level fields of API < 1.44 are the default bridge's.
    let top = d.ok(&[
        "inspect",
        "-f",
        "{{.NetworkSettings.GlobalIPv6Address}} {{.NetworkSettings.IPv6Gateway}}",
        "cc",
    ]);
    assert_eq!(top.trim(), format!("{p}3 {p}1"));
}
