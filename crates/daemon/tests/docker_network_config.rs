#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions unwrap too

//! Network and endpoint configuration as dockerd takes it, through the real docker CLI:
//! network names with any character, `--aux-address`, an endpoint's `IPAMConfig` (IPv4
//! address, link-local addresses), aliases, links and driver options at create and at
//! connect, echoed in inspect; dockerd's refusals; and port 53 left free in containers for a
//! DNS server of their own while the embedded one still answers.

mod common;

use std::net::UdpSocket;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{skip, text, Daemon};

/// A /24 of this test process's own: `10.X.N.0`.
fn subnet(n: u8) -> String {
    format!("10.{}.{n}.0", 230 + std::process::id() % 20)
}

fn inspect(d: &Daemon, format: &str, name: &str) -> String {
    d.ok(&["inspect", "-f", format, name]).trim().to_string()
}

/// `nslookup -type=a NAME` in container `from`; the addresses of the answer (not the
/// server's own line).
fn lookup(d: &Daemon, from: &str, name: &str, server: Option<&str>) -> Vec<String> {
    let mut args = vec!["exec", from, "nslookup", "-type=a", name];
    args.extend(server);
    let out = d.docker(&args);
    text(&out)
        .0
        .lines()
        .filter_map(|l| l.strip_prefix("Address:"))
        .map(|a| a.trim().to_string())
        .filter(|a| !a.ends_with(":53"))
        .collect()
}

#[test]
fn names_aux_addresses_and_endpoint_settings_are_dockers() {
    if skip() {
        return;
    }
    let d = Daemon::start();
    d.busybox("bb:local");

    // Any name that is not blank.
    d.ok(&["network", "create", "test 01"]);
    assert_eq!(inspect(&d, "{{.Name}}", "test 01"), "test 01");
    d.ok(&["run", "--rm", "--network", "test 01", "bb:local", "true"]);
    d.ok(&["network", "rm", "test 01"]);
    let out = d.docker(&["network", "create", "  "]);
    assert!(!out.status.success());

    // Auxiliary addresses are shown and never given.
    let s = subnet(1);
    let base = s.trim_end_matches(".0");
    d.ok(&[
        "network",
        "create",
        "--subnet",
        &format!("{s}/24"),
        "--aux-address",
        &format!("router={base}.2"),
        "aux",
    ]);
    let config = inspect(&d, "{{json .IPAM.Config}}", "aux");
    assert!(
        config.contains(&format!(r#""AuxiliaryAddresses":{{"router":"{base}.2"}}"#)),
        "{config}"
    );
    d.ok(&[
        "run",
        "-d",
        "--name",
        "web",
        "--network",
        "aux",
        "bb:local",
        "sleep",
        "300",
    ]);
    assert_eq!(d.ip_on("web", "aux"), format!("{base}.3"));
    let out = d.docker(&[
        "run",
        "--rm",
        "--network",
        "aux",
        "--ip",
        &format!("{base}.2"),
        "bb:local",
        "true",
    ]);
    assert!(
        text(&out).1.contains("Address already in use"),
        "{:?}",
        text(&out)
    );
    let out = d.docker(&[
        "network",
        "create",
        "--subnet",
        &format!("{}/24", subnet(2)),
        "--aux-address",
        "far=192.0.2.9",
        "bad",
    ]);
    assert!(!out.status.success());
    assert!(text(&out).1.contains("192.0.2.9"), "{:?}", text(&out));

    // At create: IPAMConfig (address, link-local address) and aliases, echoed.
    d.ok(&[
        "run",
        "-d",
        "--name",
        "client",
        "--network",
        "aux",
        "--ip",
        &format!("{base}.50"),
        "--link-local-ip",
        "169.254.7.7",
        "--network-alias",
        "cl",
        "bb:local",
        "sleep",
        "300",
    ]);
    let ep = inspect(&d, "{{json .NetworkSettings.Networks.aux}}", "client");
    for want in [
        format!(r#""IPAMConfig":{{"IPv4Address":"{base}.50","LinkLocalIPs":["169.254.7.7"]}}"#),
        r#""Aliases":["cl"]"#.to_string(),
        format!(r#""IPAddress":"{base}.50""#),
    ] {
        assert!(ep.contains(&want), "{want} in {ep}");
    }
    let addrs = d.ok(&["exec", "client", "ip", "addr", "show", "eth0"]);
    assert!(addrs.contains("inet 169.254.7.7/32"), "{addrs}");

    // At connect: address, alias, link and driver options, echoed; the link's alias is a
    // name for the connected container alone.
    d.ok(&[
        "network",
        "create",
        "--subnet",
        &format!("{}/24", subnet(3)),
        "side",
    ]);
    d.ok(&["network", "connect", "side", "web"]);
    let b3 = subnet(3);
    let b3 = b3.trim_end_matches(".0");
    d.ok(&[
        "network",
        "connect",
        "--ip",
        &format!("{b3}.77"),
        "--alias",
        "sider",
        "--link",
        "web:thelink",
        "--driver-opt",
        "com.example.opt=1",
        "side",
        "client",
    ]);
    let ep = inspect(&d, "{{json .NetworkSettings.Networks.side}}", "client");
    for want in [
        format!(r#""IPAMConfig":{{"IPv4Address":"{b3}.77"}}"#),
        r#""Links":["web:thelink"]"#.to_string(),
        r#""DriverOpts":{"com.example.opt":"1"}"#.to_string(),
        format!(r#""IPAddress":"{b3}.77""#),
    ] {
        assert!(ep.contains(&want), "{want} in {ep}");
    }
    assert!(ep.contains(r#""sider""#), "{ep}");
    let web_side = d.ip_on("web", "side");
    assert_eq!(lookup(&d, "client", "thelink", None), vec![web_side]);
    assert_eq!(lookup(&d, "web", "thelink", None), Vec::<String>::new());

    // A user-chosen address needs a user-configured subnet.
    d.ok(&["network", "create", "nosub"]);
    let out = d.docker(&[
        "network",
        "connect",
        "--ip",
        "172.30.9.9",
        "nosub",
        "client",
    ]);
    assert!(
        text(&out).1.contains(
            "user specified IP address is supported only when connecting to networks with user configured subnets"
        ),
        "{:?}",
        text(&out)
    );
    let out = d.docker(&[
        "run",
        "--rm",
        "--network",
        "aux",
        "--link-local-ip",
        "nope",
        "bb:local",
        "true",
    ]);
    assert!(!out.status.success());
}

/// A DNS server on UDP 0.0.0.0:53 inside the network namespace of process `pid` (a thread
/// of the test joins it), answering every A query with 192.0.2.53; counts the queries and
/// stops when the returned guard is dropped.
struct OwnDns {
    stop: Arc<AtomicBool>,
    queries: Arc<AtomicU32>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl OwnDns {
    fn start(pid: &str) -> Result<OwnDns, String> {
        let netns = std::fs::File::open(format!("/proc/{pid}/ns/net")).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let queries = Arc::new(AtomicU32::new(0));
        let (bound_tx, bound_rx) = std::sync::mpsc::channel();
        let (stopping, counted) = (stop.clone(), queries.clone());
        let thread = std::thread::spawn(move || {
            nix::sched::setns(&netns, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
            let socket = match UdpSocket::bind("0.0.0.0:53") {
                Ok(s) => s,
                Err(e) => {
                    bound_tx.send(Err(e.to_string())).unwrap();
                    return;
                }
            };
            socket
                .set_read_timeout(Some(Duration::from_millis(100)))
                .unwrap();
            bound_tx.send(Ok(())).unwrap();
            let mut buf = [0u8; 512];
            while !stopping.load(Ordering::SeqCst) {
                let Ok((n, peer)) = socket.recv_from(&mut buf) else {
                    continue;
                };
                if n < 12 {
                    continue;
                }
                counted.fetch_add(1, Ordering::SeqCst);
                let mut reply = buf[..n].to_vec();
                reply[2] = 0x81;
                reply[3] = 0x80;
                reply[6..8].copy_from_slice(&1u16.to_be_bytes());
                reply[8..12].fill(0);
                reply
                    .extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 192, 0, 2, 53]);
                let _ = socket.send_to(&reply, peer);
            }
        });
        let bound = bound_rx
            .recv_timeout(Duration::from_secs(10))
            .map_err(|e| e.to_string())?;
        let guard = OwnDns {
            stop,
            queries,
            thread: Some(thread),
        };
        bound.map(|()| guard)
    }
}

impl Drop for OwnDns {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[test]
fn port_53_is_free_for_the_containers_own_dns_server() {
    if skip() {
        return;
    }
    let d = Daemon::start();
    d.busybox("bb:local");
    d.ok(&["network", "create", "dnsnet"]);
    d.ok(&[
        "run",
        "-d",
        "--name",
        "peer",
        "--network",
        "dnsnet",
        "bb:local",
        "sleep",
        "300",
    ]);
    // TCP 53 on all addresses: busybox's httpd as the container's own server.
    d.ok(&[
        "run",
        "-d",
        "--name",
        "own53",
        "--network",
        "dnsnet",
        "bb:local",
        "sh",
        "-c",
        "echo fiftythree > /tmp/i; exec httpd -f -p 53 -h /tmp",
    ]);
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut got = String::new();
    while Instant::now() < deadline && got.trim() != "fiftythree" {
        got = text(&d.docker(&["exec", "peer", "wget", "-qO-", "http://own53:53/i"])).0;
        if got.trim() != "fiftythree" {
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    assert_eq!(got.trim(), "fiftythree", "{}", d.ok(&["logs", "own53"]));
    assert_eq!(inspect(&d, "{{.State.Running}}", "own53"), "true");

    // UDP 53 on all addresses, in the container's namespace.
    let pid = inspect(&d, "{{.State.Pid}}", "own53");
    let own = OwnDns::start(&pid).unwrap_or_else(|e| panic!("binding UDP 0.0.0.0:53: {e}"));
    // Asked directly, the container's own server answers...
    assert_eq!(
        lookup(&d, "own53", "anything.test", Some("127.0.0.1")),
        vec!["192.0.2.53".to_string()]
    );
    assert!(own.queries.load(Ordering::SeqCst) >= 1);
    // ...and the embedded server still answers at 127.0.0.11:53, over UDP and TCP.
    let before = own.queries.load(Ordering::SeqCst);
    let peer = d.ip_on("peer", "dnsnet");
    assert_eq!(lookup(&d, "own53", "peer", None), vec![peer.clone()]);
    assert_eq!(own.queries.load(Ordering::SeqCst), before);
    let got = d.ok(&["exec", "peer", "wget", "-qO-", "http://own53:53/i"]);
    assert_eq!(got.trim(), "fiftythree");
    // The embedded server's own sockets are not on port 53.
    let listening = d.ok(&["exec", "own53", "netstat", "-lnu"]);
    assert!(!listening.contains("127.0.0.11:53 "), "{listening}");
    drop(own);
}
