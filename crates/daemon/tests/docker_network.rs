#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions unwrap too

//! Networking through the real docker CLI: user networks, isolation, `--internal`, published
//! ports, `container:` and `none` modes, `/etc` files, cleanup, and Docker's errors. Each
//! test's berthd has its own default bridge, subnet and nftables table (see `common`); the
//! only other things touched are loopback and what that berthd makes.

mod common;

use std::io::Write;
use std::net::TcpListener;
use std::time::{Duration, Instant};

use common::{free_port, http_get, skip, text, Daemon};

/// `docker run -d` of a busybox httpd serving `hello` on port 80, with `args` before the
/// image.
fn httpd(d: &Daemon, args: &[&str]) -> String {
    let mut all = vec!["run", "-d"];
    all.extend_from_slice(args);
    all.extend_from_slice(&[
        "bb:local",
        "sh",
        "-c",
        "mkdir -p /www && echo hello > /www/index.html && exec httpd -f -p 80 -h /www",
    ]);
    d.ok(&all).trim().to_string()
}

/// Whether a ping from a new container (with `args` before the image) reaches `ip`.
fn pings(d: &Daemon, args: &[&str], ip: &str) -> bool {
    let mut all = vec!["run", "--rm"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["bb:local", "ping", "-c", "1", "-W", "2", ip]);
    d.docker(&all).status.success()
}

#[test]
fn peers_on_a_user_network_reach_each_other_and_other_networks_do_not() {
    if skip() {
        return;
    }
    let d = Daemon::start();
    d.busybox("bb:local");
    d.ok(&["network", "create", "front"]);
    d.ok(&["network", "create", "back"]);
    d.ok(&[
        "run",
        "-d",
        "--name",
        "peer",
        "--network",
        "front",
        "bb:local",
        "sleep",
        "300",
    ]);
    let a = d.ip_on("peer", "front");
    // TCP too: a server in `a`, a client in a neighbour.
    d.ok(&[
        "exec",
        "-d",
        "peer",
        "sh",
        "-c",
        "echo pong | nc -l -p 7000",
    ]);
    assert!(pings(&d, &["--network", "front"], &a));
    let answer = d.nc_from("front", &a, "7000", "pong");
    assert_eq!(answer.trim(), "pong");
    // Another user network and the default bridge are isolated from it.
    assert!(!pings(&d, &["--network", "back"], &a));
    assert!(!pings(&d, &[], &a));
    // inspect: the network lists its container; the container its endpoint.
    let members = d.ok(&[
        "network",
        "inspect",
        "-f",
        "{{range .Containers}}{{.Name}} {{.IPv4Address}}{{end}}",
        "front",
    ]);
    assert!(members.starts_with(&format!("peer {a}/")), "{members}");
    let ep = d.ok(&[
        "inspect",
        "-f",
        "{{with index .NetworkSettings.Networks \"front\"}}{{.Gateway}} {{.IPPrefixLen}} {{.MacAddress}} {{len .EndpointID}} {{len .NetworkID}}{{end}}",
        "peer",
    ]);
    let parts: Vec<&str> = ep.split_whitespace().collect();
    let octets: Vec<&str> = a.split('.').collect();
    assert_eq!(parts[4], "64", "{ep}");
    assert_eq!(parts[3], "64", "{ep}");
    assert!(parts[2].starts_with("02:42:"), "{ep}");
    assert_eq!(
        parts[2],
        format!(
            "02:42:{}",
            octets
                .iter()
                .map(|o| format!("{:02x}", o.parse::<u8>().unwrap()))
                .collect::<Vec<_>>()
                .join(":")
        )
    );
    // `network connect` of the running container to `back`: reachable there too, as eth1.
    d.ok(&["network", "connect", "back", "peer"]);
    let a_back = d.ip_on("peer", "back");
    assert!(pings(&d, &["--network", "back"], &a_back));
    let links = d.ok(&["exec", "peer", "ip", "-o", "-4", "addr"]);
    assert!(
        links.contains(&format!("eth1    inet {a_back}/")),
        "{links}"
    );
    d.ok(&["network", "disconnect", "back", "peer"]);
    assert!(!pings(&d, &["--network", "back"], &a_back));
    let links = d.ok(&["exec", "peer", "ip", "-o", "link"]);
    assert!(!links.contains("eth1"), "{links}");
}

#[test]
fn internal_network_has_no_way_out() {
    if skip() {
        return;
    }
    let d = Daemon::start();
    d.busybox("bb:local");
    // A server on the host's own (non-loopback) address stands for "outside".
    let route = std::process::Command::new("ip")
        .args(["-4", "-o", "route", "get", "1.1.1.1"])
        .output()
        .unwrap();
    let route = String::from_utf8_lossy(&route.stdout).to_string();
    let host_ip = route
        .split_whitespace()
        .skip_while(|w| *w != "src")
        .nth(1)
        .expect("the host has an IPv4 default route")
        .to_string();
    let listener = TcpListener::bind((host_ip.as_str(), 0)).unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stopped = std::sync::Arc::clone(&stop);
    let accept = std::thread::spawn(move || {
        // Answers each connection with "out" until the test says stop (or 120 s pass).
        listener.set_nonblocking(true).unwrap();
        let deadline = Instant::now() + Duration::from_secs(120);
        while Instant::now() < deadline && !stopped.load(std::sync::atomic::Ordering::Relaxed) {
            match listener.accept() {
                Ok((mut s, _)) => {
                    let _ = s.write_all(b"out\n");
                }
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    });
    d.ok(&["network", "create", "--internal", "sealed"]);
    d.ok(&["network", "create", "open"]);
    let reach = |net: &str| {
        let out = d.docker(&[
            "run",
            "--rm",
            "--network",
            net,
            "bb:local",
            "nc",
            "-w",
            "2",
            &host_ip,
            &port,
        ]);
        text(&out).0.trim() == "out"
    };
    assert!(
        reach("open"),
        "the control: a plain network reaches the host"
    );
    assert!(!reach("sealed"));
    let routes = d.ok(&[
        "run",
        "--rm",
        "--network",
        "sealed",
        "bb:local",
        "ip",
        "route",
    ]);
    assert!(!routes.contains("default"), "{routes}");
    assert_eq!(
        d.ok(&["network", "inspect", "-f", "{{.Internal}}", "sealed"])
            .trim(),
        "true"
    );
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let _ = accept.join();
}

#[test]
fn published_ports_answer_on_loopback_and_show_in_ps_and_port() {
    if skip() {
        return;
    }
    let d = Daemon::start();
    d.busybox("bb:local");
    let (p1, p2, p3) = (free_port(), free_port(), free_port());
    let local = format!("127.0.0.1:{p1}:80");
    let any = format!("{p2}:80");
    let udp = format!("{p3}:53/udp");
    let id = httpd(
        &d,
        &[
            "--name", "web", "-p", &local, "-p", &any, "-p", &udp, "-p", "81", "--expose", "90",
            "-P",
        ],
    );
    assert_eq!(
        http_get(p1).as_deref().map(|b| b.contains("hello")),
        Some(true)
    );
    assert_eq!(
        http_get(p2).as_deref().map(|b| b.contains("hello")),
        Some(true)
    );
    let port = d.ok(&["port", "web"]);
    let lines: Vec<&str> = port.lines().collect();
    assert!(
        lines.contains(&format!("80/tcp -> 127.0.0.1:{p1}").as_str()),
        "{port}"
    );
    assert!(
        lines.contains(&format!("80/tcp -> 0.0.0.0:{p2}").as_str()),
        "{port}"
    );
    assert!(
        lines.contains(&format!("53/udp -> 0.0.0.0:{p3}").as_str()),
        "{port}"
    );
    // `-p 81` and `-P` (for `--expose 90`) took ports from the ephemeral range.
    let random: Vec<u16> = lines
        .iter()
        .filter(|l| l.starts_with("81/tcp") || l.starts_with("90/tcp"))
        .map(|l| l.rsplit(':').next().unwrap().parse().unwrap())
        .collect();
    assert_eq!(random.len(), 2, "{port}");
    assert_eq!(
        d.ok(&["port", "web", "53/udp"]).trim(),
        format!("0.0.0.0:{p3}")
    );
    let ps = d.ok(&["ps", "--format", "{{.Ports}}"]);
    assert!(ps.contains(&format!("127.0.0.1:{p1}->80/tcp")), "{ps}");
    assert!(ps.contains(&format!("0.0.0.0:{p2}->80/tcp")), "{ps}");
    assert!(ps.contains(&format!("0.0.0.0:{p3}->53/udp")), "{ps}");
    // A second container cannot have the same host port; the first keeps it.
    let out = d.docker(&["run", "--rm", "-p", &any, "bb:local", "true"]);
    let (_, err) = text(&out);
    assert_eq!(out.status.code(), Some(125), "{err}");
    assert!(
        err.contains(&format!(
            "Bind for 0.0.0.0:{p2} failed: port is already allocated"
        )),
        "{err}"
    );
    assert_eq!(
        http_get(p2).as_deref().map(|b| b.contains("hello")),
        Some(true)
    );
    assert_eq!(d.ok(&["ps", "-aq"]).trim(), &id[..12]);
    // Stopped: no ports; started again: the same bindings answer.
    d.ok(&["stop", "-t", "1", "web"]);
    assert_eq!(d.ok(&["port", "web"]), "");
    d.ok(&["start", "web"]);
    assert_eq!(
        http_get(p1).as_deref().map(|b| b.contains("hello")),
        Some(true)
    );
    d.ok(&["rm", "-f", "web"]);
    // Gone with the container: the port is free for another.
    let id = httpd(&d, &["-p", &local]);
    assert_eq!(
        http_get(p1).as_deref().map(|b| b.contains("hello")),
        Some(true)
    );
    d.ok(&["rm", "-f", &id]);
}

/// A UDP echo server on `port` inside the network namespace of the process `pid` (busybox
/// has no UDP server): a thread joins the namespace, binds, and echoes until the test ends.
fn udp_echo_in(pid: &str, port: u16) {
    let ns = std::fs::File::open(format!("/proc/{pid}/ns/net")).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
        let socket = std::net::UdpSocket::bind(("0.0.0.0", port)).unwrap();
        tx.send(()).unwrap();
        let mut buf = [0u8; 512];
        while let Ok((n, peer)) = socket.recv_from(&mut buf) {
            let mut reply = b"echo:".to_vec();
            reply.extend_from_slice(&buf[..n]);
            let _ = socket.send_to(&reply, peer);
        }
    });
    rx.recv_timeout(Duration::from_secs(10)).unwrap();
}

#[test]
fn a_published_udp_port_answers_from_the_host() {
    if skip() {
        return;
    }
    let d = Daemon::start();
    d.busybox("bb:local");
    let port = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    d.ok(&[
        "run",
        "-d",
        "--name",
        "udp",
        "-p",
        &format!("{port}:5353/udp"),
        "bb:local",
        "sleep",
        "300",
    ]);
    let pid = d.ok(&["inspect", "-f", "{{.State.Pid}}", "udp"]);
    udp_echo_in(pid.trim(), 5353);
    let client = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let mut buf = [0u8; 64];
    let mut got = None;
    for _ in 0..5 {
        client.send_to(b"ping", ("127.0.0.1", port)).unwrap();
        if let Ok((n, _)) = client.recv_from(&mut buf) {
            got = Some(String::from_utf8_lossy(&buf[..n]).into_owned());
            break;
        }
    }
    assert_eq!(got.as_deref(), Some("echo:ping"));
    assert_eq!(
        d.ok(&["port", "udp"]).trim(),
        format!("5353/udp -> 0.0.0.0:{port}")
    );
}

#[test]
fn container_mode_shares_the_stack_and_none_has_only_loopback() {
    if skip() {
        return;
    }
    let d = Daemon::start();
    d.busybox("bb:local");
    d.ok(&[
        "run",
        "-d",
        "--name",
        "base",
        "--hostname",
        "basehost",
        "bb:local",
        "sleep",
        "300",
    ]);
    let base = d.ip_on("base", "bridge");
    let shared = d.ok(&[
        "run",
        "--rm",
        "--network",
        "container:base",
        "bb:local",
        "sh",
        "-c",
        "ip -4 -o addr show eth0; hostname",
    ]);
    assert!(shared.contains(&format!("inet {base}/")), "{shared}");
    assert!(shared.ends_with("basehost\n"), "{shared}");
    // The same loopback too: a server in `base` on 127.0.0.1 answers the sharer.
    d.ok(&[
        "exec",
        "-d",
        "base",
        "sh",
        "-c",
        "echo shared | nc -l -p 7001",
    ]);
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut got = String::new();
    while Instant::now() < deadline && got.trim() != "shared" {
        got = d.ok(&[
            "run",
            "--rm",
            "--network",
            "container:base",
            "bb:local",
            "sh",
            "-c",
            "nc -w 2 127.0.0.1 7001 || true",
        ]);
    }
    assert_eq!(got.trim(), "shared");
    let out = d.docker(&[
        "run",
        "--rm",
        "--network",
        "container:base",
        "-p",
        "80:80",
        "bb:local",
        "true",
    ]);
    assert_eq!(out.status.code(), Some(125));
    assert!(
        text(&out)
            .1
            .contains("conflicting options: port publishing and the container type network mode"),
        "{}",
        text(&out).1
    );
    let out = d.docker(&[
        "run",
        "--rm",
        "--network",
        "container:nosuch",
        "bb:local",
        "true",
    ]);
    assert_eq!(out.status.code(), Some(125));
    assert!(
        text(&out).1.contains("No such container: nosuch"),
        "{}",
        text(&out).1
    );
    assert!(
        !text(&out).1.contains("Unable to find image"),
        "{}",
        text(&out).1
    );
    let none = d.ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        "bb:local",
        "ip",
        "-o",
        "link",
    ]);
    assert_eq!(none.lines().count(), 1, "{none}");
    assert!(none.contains("lo:"), "{none}");
    assert!(none.contains("UP"), "{none}");
    let id = d.ok(&["run", "-d", "--network", "none", "bb:local", "sleep", "300"]);
    let nets = d.ok(&[
        "inspect",
        "-f",
        "{{range $k, $v := .NetworkSettings.Networks}}{{$k}} {{$v.IPAddress}}|{{end}}",
        id.trim(),
    ]);
    assert_eq!(nets.trim(), "none |");
    assert_eq!(
        d.ok(&[
            "ps",
            "-f",
            &format!("id={}", id.trim()),
            "--format",
            "{{.Ports}}"
        ])
        .trim(),
        ""
    );
}

#[test]
fn etc_files_have_the_address_hostname_aliases_and_dns() {
    if skip() {
        return;
    }
    let d = Daemon::start();
    d.busybox("bb:local");
    d.ok(&["network", "create", "--subnet", "10.251.77.0/24", "named"]);
    let out = d.ok(&[
        "run", "--rm", "--network", "named", "--ip", "10.251.77.9", "--network-alias", "db",
        "--hostname", "h1", "--add-host", "extra:10.1.2.3", "--add-host", "gw:host-gateway",
        "--dns", "10.0.0.53", "--dns-search", "example.org", "bb:local", "sh", "-c",
        "cat /etc/hosts; echo ---; cat /etc/resolv.conf; echo ---; hostname; ip -4 -o addr show eth0",
    ]);
    let parts: Vec<&str> = out.split("---\n").collect();
    let (hosts, resolv, rest) = (parts[0], parts[1], parts[2]);
    assert!(hosts.starts_with("127.0.0.1\tlocalhost\n"), "{hosts}");
    assert!(hosts.contains("10.1.2.3\textra\n"), "{hosts}");
    let gateway = d.bip.split('/').next().unwrap();
    assert!(hosts.contains(&format!("{gateway}\tgw\n")), "{hosts}");
    assert!(hosts.ends_with("10.251.77.9\th1 db\n"), "{hosts}");
    // On a user network the embedded DNS server is the one nameserver (it forwards to
    // `--dns`); on the default bridge, `--dns` is written as is.
    assert_eq!(
        resolv
            .lines()
            .filter(|l| l.starts_with("nameserver"))
            .collect::<Vec<_>>(),
        ["nameserver 127.0.0.11"],
        "{resolv}"
    );
    assert!(resolv.contains("options ndots:0\n"), "{resolv}");
    assert!(resolv.contains("search example.org\n"), "{resolv}");
    let resolv = d.ok(&[
        "run",
        "--rm",
        "--dns",
        "10.0.0.53",
        "--dns-option",
        "attempts:2",
        "bb:local",
        "cat",
        "/etc/resolv.conf",
    ]);
    assert!(resolv.contains("nameserver 10.0.0.53\n"), "{resolv}");
    assert!(!resolv.contains("nameserver 127."), "{resolv}");
    assert!(resolv.contains("options attempts:2\n"), "{resolv}");
    assert!(!resolv.contains("ndots"), "{resolv}");
    assert!(rest.starts_with("h1\n"), "{rest}");
    assert!(rest.contains("inet 10.251.77.9/24"), "{rest}");
    // Aliases and fixed addresses are for user networks only, as in Docker.
    // (The docker CLI refuses `run --network-alias` on the default bridge itself; `network
    // connect` leaves it to the daemon.)
    d.ok(&["create", "--name", "plain", "bb:local", "true"]);
    d.ok(&["network", "disconnect", "bridge", "plain"]);
    let out = d.docker(&["network", "connect", "--alias", "x", "bridge", "plain"]);
    assert!(
        text(&out).1.contains(
            "network-scoped alias is supported only for containers in user defined networks"
        ),
        "{}",
        text(&out).1
    );
    let out = d.docker(&["run", "--rm", "--ip", "10.9.9.9", "bb:local", "true"]);
    assert!(
        text(&out)
            .1
            .contains("user specified IP address is supported on user defined networks only"),
        "{}",
        text(&out).1
    );
}

/// veths whose master is `bridge`.
fn ports_of(bridge: &str) -> String {
    let out = std::process::Command::new("ip")
        .args(["-o", "link", "show", "master", bridge])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The elements of the daemon's published-port maps.
fn port_elements(table: &str) -> Vec<String> {
    let mut all = Vec::new();
    for map in ["tcp_any", "udp_any", "tcp_ip", "udp_ip"] {
        let out = std::process::Command::new("nft")
            .args(["-j", "list", "map", "ip", table, map])
            .output()
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        for item in v["nftables"].as_array().into_iter().flatten() {
            for e in item["map"]["elem"].as_array().into_iter().flatten() {
                all.push(e.to_string());
            }
        }
    }
    all
}

#[test]
fn fifty_run_rm_cycles_leave_no_network_state_behind() {
    if skip() {
        return;
    }
    let d = Daemon::start();
    d.busybox("bb:local");
    d.ok(&["network", "create", "cyc"]);
    let cyc_id = d.ok(&["network", "inspect", "-f", "{{.Id}}", "cyc"]);
    let cyc_bridge = format!("br-{}", &cyc_id.trim()[..12]);
    let port = free_port().to_string();
    for i in 0..50 {
        let publish = format!("127.0.0.1:{port}:80");
        let net = if i % 2 == 0 { "bridge" } else { "cyc" };
        let out = d.ok(&[
            "run",
            "--rm",
            "--network",
            net,
            "-p",
            &publish,
            "bb:local",
            "sh",
            "-c",
            "ip -4 -o addr show eth0 | wc -l",
        ]);
        assert_eq!(out.trim(), "1", "cycle {i}");
    }
    assert_eq!(d.ok(&["ps", "-aq"]), "");
    assert_eq!(ports_of(&d.bridge), "");
    assert_eq!(ports_of(&cyc_bridge), "");
    assert_eq!(port_elements(&d.table), Vec::<String>::new());
    let netns = std::fs::read_dir(d.dir.join("run/netns")).unwrap().count();
    assert_eq!(netns, 0);
    for net in ["bridge", "cyc"] {
        assert_eq!(
            d.ok(&["network", "inspect", "-f", "{{len .Containers}}", net])
                .trim(),
            "0"
        );
    }
    // No address is still held: every IPAM record is empty of containers.
    for entry in std::fs::read_dir(d.dir.join("data/network/ipam")).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        let held = v["allocated"].as_object().map_or(0, |m| m.len());
        assert_eq!(held, 0, "{text}");
    }
    d.ok(&["network", "rm", "cyc"]);
    assert!(std::process::Command::new("ip")
        .args(["link", "show", &cyc_bridge])
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| !s.success()));
}

#[test]
fn bad_network_requests_get_dockers_errors_and_change_nothing() {
    if skip() {
        return;
    }
    let d = Daemon::start();
    d.busybox("bb:local");
    d.ok(&["network", "create", "--subnet", "10.252.5.0/24", "taken"]);
    let before = d.ok(&["network", "ls", "-q"]);
    // The same subnet again, and one inside it.
    for subnet in ["10.252.5.0/24", "10.252.5.128/25"] {
        let out = d.docker(&["network", "create", "--subnet", subnet, "again"]);
        assert_eq!(out.status.code(), Some(1));
        assert!(
            text(&out)
                .1
                .contains("Pool overlaps with other one on this address space"),
            "{}",
            text(&out).1
        );
    }
    let out = d.docker(&["network", "create", "taken"]);
    assert!(
        text(&out)
            .1
            .contains("network with name taken already exists"),
        "{}",
        text(&out).1
    );
    // In use: refused; the container keeps its network.
    d.ok(&[
        "run",
        "-d",
        "--name",
        "user",
        "--network",
        "taken",
        "bb:local",
        "sleep",
        "300",
    ]);
    let ip = d.ip_on("user", "taken");
    let out = d.docker(&["network", "rm", "taken"]);
    assert_eq!(out.status.code(), Some(1));
    let (_, err) = text(&out);
    assert!(
        err.contains("error while removing network: network taken id "),
        "{err}"
    );
    assert!(err.contains("has active endpoints"), "{err}");
    assert_eq!(d.ip_on("user", "taken"), ip);
    for builtin in ["bridge", "host", "none"] {
        let out = d.docker(&["network", "rm", builtin]);
        assert!(
            text(&out).1.contains(&format!(
                "{builtin} is a pre-defined network and cannot be removed"
            )),
            "{}",
            text(&out).1
        );
    }
    // Unknown network: at start, as dockerd (no pull attempt); nothing left with --rm.
    let out = d.docker(&["run", "--rm", "--network", "nosuch", "bb:local", "true"]);
    assert_eq!(out.status.code(), Some(125));
    let (_, err) = text(&out);
    assert!(err.contains("network nosuch not found"), "{err}");
    assert!(!err.contains("Unable to find image"), "{err}");
    let out = d.docker(&["network", "inspect", "nosuch"]);
    assert!(
        text(&out).1.contains("network nosuch not found"),
        "{}",
        text(&out).1
    );
    let out = d.docker(&["network", "connect", "nosuch", "user"]);
    assert!(
        text(&out).1.contains("network nosuch not found"),
        "{}",
        text(&out).1
    );
    assert_eq!(d.ok(&["network", "ls", "-q"]), before);
    assert_eq!(d.ok(&["ps", "-aq"]).lines().count(), 1);
    let out = d.docker(&["network", "connect", "none", "user"]);
    assert!(
        text(&out)
            .1
            .contains("one of the networks in private (none) mode"),
        "{}",
        text(&out).1
    );
    let out = d.docker(&["network", "connect", "taken", "user"]);
    assert!(
        text(&out)
            .1
            .contains("endpoint with name user already exists in network taken"),
        "{}",
        text(&out).1
    );
    let out = d.docker(&["network", "disconnect", "bridge", "user"]);
    assert!(
        text(&out).1.contains("is not connected to network bridge"),
        "{}",
        text(&out).1
    );
    assert_eq!(d.ip_on("user", "taken"), ip);
    // Removed once unused; prune takes the unused ones and keeps the default ones.
    d.ok(&["rm", "-f", "user"]);
    d.ok(&["network", "rm", "taken"]);
    d.ok(&["network", "create", "spare"]);
    let pruned = d.ok(&["network", "prune", "-f"]);
    assert!(pruned.contains("spare"), "{pruned}");
    let names = d.ok(&["network", "ls", "--format", "{{.Name}}"]);
    let mut names: Vec<&str> = names.lines().collect();
    names.sort();
    assert_eq!(names, ["bridge", "host", "none"]);
}

#[test]
fn endpoints_survive_a_daemon_restart_and_those_of_dead_containers_are_released() {
    if skip() {
        return;
    }
    let mut d = Daemon::start();
    d.busybox("bb:local");
    let (p1, p2) = (free_port(), free_port());
    let keep = format!("127.0.0.1:{p1}:80");
    let lose = format!("127.0.0.1:{p2}:80");
    httpd(&d, &["--name", "web", "-p", &keep]);
    let ip = d.ip_on("web", "bridge");
    d.ok(&[
        "run", "-d", "--name", "gone", "-p", &lose, "bb:local", "sleep", "300",
    ]);
    let pid: i32 = d
        .ok(&["inspect", "-f", "{{.State.Pid}}", "gone"])
        .trim()
        .parse()
        .unwrap();
    assert_eq!(
        http_get(p1).as_deref().map(|b| b.contains("hello")),
        Some(true)
    );
    d.kill9();
    // berthd is gone: the container still serves, and `gone` dies meanwhile.
    assert_eq!(
        http_get(p1).as_deref().map(|b| b.contains("hello")),
        Some(true)
    );
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::path::Path::new(&format!("/proc/{pid}")).exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    d.spawn();
    assert_eq!(d.ip_on("web", "bridge"), ip);
    assert_eq!(
        http_get(p1).as_deref().map(|b| b.contains("hello")),
        Some(true)
    );
    assert_eq!(
        d.ok(&["inspect", "-f", "{{.State.Status}}", "gone"]).trim(),
        "exited"
    );
    // Only `web` holds a veth, an address and a published port now.
    assert_eq!(ports_of(&d.bridge).lines().count(), 1);
    assert_eq!(port_elements(&d.table).len(), 1);
    assert_eq!(
        d.ok(&["network", "inspect", "-f", "{{len .Containers}}", "bridge"])
            .trim(),
        "1"
    );
    // The released port can be published again.
    let out = d.ok(&["run", "--rm", "-p", &lose, "bb:local", "echo", "ok"]);
    assert_eq!(out, "ok\n");
    // The legacy top-level fields of API < 1.44 are those of the bridge endpoint.
    assert_eq!(
        d.ok(&["inspect", "-f", "{{.NetworkSettings.IPAddress}}", "web"])
            .trim(),
        ip
    );
}
