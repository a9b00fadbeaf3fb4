#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions unwrap too

//! The embedded DNS server through the real docker CLI: containers on a user network find each
//! other by name, alias, `NAME.NETWORK` and id, those on another network do not, other names
//! are forwarded to the container's `--dns` server (a fake one the test runs on loopback), and
//! all of it works again after berthd is killed and started.

mod common;

use std::net::UdpSocket;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{skip, text, Daemon};

/// `nslookup NAME` in container `from` (exec); the addresses of the answer, if it had one.
fn lookup(d: &Daemon, from: &str, name: &str) -> Option<Vec<String>> {
    let out = d.docker(&["exec", from, "nslookup", "-type=a", name]);
    let (stdout, _) = text(&out);
    if !out.status.success() {
        return None;
    }
    // busybox: the server's own lines come first ("Address: 127.0.0.11:53").
    let answers: Vec<String> = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("Address:"))
        .map(|a| a.trim().to_string())
        .filter(|a| !a.starts_with("127.0.0.11"))
        .collect();
    (!answers.is_empty()).then_some(answers)
}

/// A DNS server on `addr`:53 of the host that answers every A query with 192.0.2.7, and counts
/// them; it stops with the test process.
fn fake_upstream(addr: &str) -> Arc<AtomicU32> {
    let socket = UdpSocket::bind((addr, 53)).unwrap();
    let count = Arc::new(AtomicU32::new(0));
    let counted = count.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 512];
        while let Ok((n, peer)) = socket.recv_from(&mut buf) {
            if n < 12 {
                continue;
            }
            counted.fetch_add(1, Ordering::SeqCst);
            // The header with QR, RD, RA and one answer; the question as asked; then the
            // answer, its name a pointer to the question's.
            let mut reply = buf[..n].to_vec();
            reply[2] = 0x81;
            reply[3] = 0x80;
            reply[6..8].copy_from_slice(&1u16.to_be_bytes());
            reply[8..12].fill(0);
            reply.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 192, 0, 2, 7]);
            let _ = socket.send_to(&reply, peer);
        }
    });
    count
}

#[test]
fn names_and_aliases_resolve_on_shared_networks_only() {
    if skip() {
        return;
    }
    let d = Daemon::start();
    d.busybox("bb:local");
    d.ok(&["network", "create", "front"]);
    d.ok(&["network", "create", "back"]);
    let web = d.ok(&[
        "run",
        "-d",
        "--name",
        "web",
        "--network",
        "front",
        "--network-alias",
        "www",
        "bb:local",
        "sh",
        "-c",
        "echo hi > /tmp/i; exec httpd -f -p 80 -h /tmp",
    ]);
    let web_id = web.trim();
    d.ok(&[
        "run",
        "-d",
        "--name",
        "client",
        "--network",
        "front",
        "bb:local",
        "sleep",
        "300",
    ]);
    d.ok(&[
        "run",
        "-d",
        "--name",
        "outsider",
        "--network",
        "back",
        "bb:local",
        "sleep",
        "300",
    ]);
    d.ok(&["run", "-d", "--name", "legacy", "bb:local", "sleep", "300"]);
    let ip = d.ip_on("web", "front");

    let resolv = d.ok(&["exec", "client", "cat", "/etc/resolv.conf"]);
    assert!(resolv.contains("nameserver 127.0.0.11\n"), "{resolv}");
    for name in ["web", "WWW", "web.front", &web_id[..12]] {
        assert_eq!(lookup(&d, "client", name), Some(vec![ip.clone()]), "{name}");
    }
    // And by name over TCP (wget resolves, then connects).
    let got = d.ok(&["exec", "client", "wget", "-qO-", "http://www/i"]);
    assert_eq!(got.trim(), "hi");
    // Reverse: NAME.NETWORK.
    let out = d.ok(&["exec", "client", "nslookup", &ip]);
    assert!(out.contains("web.front"), "{out}");

    // Not from another network, nor from the default bridge (which has no embedded DNS).
    assert_eq!(lookup(&d, "outsider", "web"), None);
    assert_eq!(lookup(&d, "outsider", "web.front"), None);
    let resolv = d.ok(&["exec", "legacy", "cat", "/etc/resolv.conf"]);
    assert!(!resolv.contains("127.0.0.11"), "{resolv}");

    // Connected to `front` with an alias, the outsider finds web, and is found by its alias.
    d.ok(&["network", "connect", "--alias", "side", "front", "outsider"]);
    assert_eq!(lookup(&d, "outsider", "web"), Some(vec![ip.clone()]));
    let side = d.ip_on("outsider", "front");
    assert_eq!(lookup(&d, "client", "side"), Some(vec![side]));
    d.ok(&["network", "disconnect", "front", "outsider"]);
    assert_eq!(lookup(&d, "client", "side"), None);
    assert_eq!(lookup(&d, "outsider", "web"), None);

    // A stopped container is no longer a name.
    d.ok(&["stop", "-t", "1", "web"]);
    assert_eq!(lookup(&d, "client", "web"), None);
}

#[test]
fn other_names_go_to_the_containers_dns_servers_also_after_a_daemon_restart() {
    if skip() {
        return;
    }
    let mut d = Daemon::start();
    d.busybox("bb:local");
    // A loopback address of the process's own, so that parallel tests do not meet.
    let upstream = format!(
        "127.77.{}.{}",
        std::process::id() % 250,
        1 + std::process::id() % 7
    );
    let queries = fake_upstream(&upstream);
    d.ok(&["network", "create", "net"]);
    d.ok(&[
        "run",
        "-d",
        "--name",
        "ca",
        "--network",
        "net",
        "--dns",
        &upstream,
        "bb:local",
        "sleep",
        "300",
    ]);
    d.ok(&[
        "run",
        "-d",
        "--name",
        "cb",
        "--network",
        "net",
        "bb:local",
        "sleep",
        "300",
    ]);
    let b = d.ip_on("cb", "net");

    assert_eq!(
        lookup(&d, "ca", "outside.test"),
        Some(vec!["192.0.2.7".to_string()])
    );
    assert!(queries.load(Ordering::SeqCst) >= 1);
    // Engine names are answered without asking upstream.
    let before = queries.load(Ordering::SeqCst);
    assert_eq!(lookup(&d, "ca", "cb"), Some(vec![b.clone()]));
    assert_eq!(queries.load(Ordering::SeqCst), before);

    d.kill9();
    d.spawn();
    // The containers ran on; their servers are back.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut found = None;
    while found.is_none() && Instant::now() < deadline {
        found = lookup(&d, "ca", "cb");
    }
    assert_eq!(found, Some(vec![b]));
    assert_eq!(
        lookup(&d, "ca", "outside.test"),
        Some(vec!["192.0.2.7".to_string()])
    );
}

/// A DNS query for `name`, type A, with id `id`.
fn a_query(id: u16, name: &str) -> Vec<u8> {
    let mut q = id.to_be_bytes().to_vec();
    q.extend_from_slice(&[1, 0, 0, 1, 0, 0, 0, 0, 0, 0]); // RD, one question
    for label in name.split('.') {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.extend_from_slice(&[0, 0, 1, 0, 1]);
    q
}

#[test]
fn lookups_stay_fast_during_a_burst_of_creates() {
    if skip() {
        return;
    }
    let d = Daemon::start();
    d.busybox("busybox");
    d.ok(&["network", "create", "burstnet"]);
    d.ok(&[
        "run",
        "-d",
        "--network",
        "burstnet",
        "--name",
        "target",
        "busybox",
        "sleep",
        "300",
    ]);
    d.ok(&[
        "run",
        "-d",
        "--network",
        "burstnet",
        "--name",
        "asker",
        "busybox",
        "sleep",
        "300",
    ]);
    let pid = d.ok(&["inspect", "-f", "{{.State.Pid}}", "asker"]);
    let netns = std::fs::File::open(format!("/proc/{}/ns/net", pid.trim())).unwrap();
    // A client in the asker's network namespace (this thread only) asking for `target` every
    // millisecond, recording each answer's latency, until told to stop.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stopping = stop.clone();
    let asked = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counting = asked.clone();
    let client = std::thread::spawn(move || {
        nix::sched::setns(&netns, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket
            .set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        let mut latencies = Vec::new();
        let mut id = 0u16;
        while !stopping.load(Ordering::SeqCst) {
            id = id.wrapping_add(1);
            let t0 = Instant::now();
            socket
                .send_to(&a_query(id, "target"), "127.0.0.11:53")
                .unwrap();
            let mut buf = [0u8; 512];
            loop {
                match socket.recv(&mut buf) {
                    Ok(n) if n >= 2 && buf[..2] == id.to_be_bytes() => break,
                    Ok(_) => continue,
                    Err(e) => panic!("no answer within 2 s: {e}"),
                }
            }
            latencies.push(t0.elapsed());
            counting.fetch_add(1, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(1));
        }
        latencies
    });
    // 50 creates at once, each on a connection of its own, as raw HTTP (no client process in
    // the way), twice, and again (6 rounds at most) until 100 lookups were made under them, so
    // that the 99th percentile is not the slowest one.
    let body = r#"{"Image":"busybox","Cmd":["true"]}"#;
    let request = format!(
        "POST /containers/create HTTP/1.1\r\nHost: d\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    for round in 0..6 {
        if round >= 2 && asked.load(Ordering::SeqCst) >= 100 {
            break;
        }
        let creates: Vec<_> = (0..50)
            .map(|_| {
                let (socket, request) = (d.socket.clone(), request.clone());
                std::thread::spawn(move || {
                    use std::io::{Read, Write};
                    let mut conn = std::os::unix::net::UnixStream::connect(socket).unwrap();
                    conn.set_read_timeout(Some(Duration::from_secs(60)))
                        .unwrap();
                    conn.write_all(request.as_bytes()).unwrap();
                    let mut answer = String::new();
                    let _ = conn.read_to_string(&mut answer);
                    answer
                })
            })
            .collect();
        for c in creates {
            let answer = c.join().unwrap();
            assert!(
                answer.starts_with("HTTP/1.1 201"),
                "a create failed: {answer}\n{}",
                d.log()
            );
        }
    }
    stop.store(true, Ordering::SeqCst);
    let mut latencies = client.join().unwrap();
    latencies.sort();
    assert!(latencies.len() >= 100, "too few lookups: {latencies:?}");
    let p99 = latencies[(latencies.len() * 99).div_ceil(100) - 1];
    assert!(
        p99 < Duration::from_millis(50),
        "p99 {p99:?} over {} lookups: {latencies:?}",
        latencies.len()
    );
}
