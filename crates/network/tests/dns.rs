#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions unwrap too
//! The embedded DNS server in a real network namespace: engine names answered locally, other
//! names forwarded to a fake upstream in the host's namespace, SERVFAIL without upstreams,
//! and sockets closed when the server goes.

mod common;
mod dnskit;

use std::io::ErrorKind;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use berth_network::dns::DnsServer;
use common::root_or_skip;
use dnskit::{
    parse, query, tcp_ask, udp_ask, udp_raw, FakeResolver, Netns, Upstream, REPLY_WAIT, TYPE_A,
    TYPE_AAAA, TYPE_PTR,
};

fn start(netns: &Netns, upstreams: Vec<SocketAddr>) -> DnsServer {
    let started = Instant::now();
    let server = DnsServer::start(
        &netns.path(),
        "ctr1".to_string(),
        FakeResolver::new(upstreams),
    )
    .unwrap();
    println!("DnsServer::start took {:?}", started.elapsed());
    server
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn engine_names_are_answered_locally_over_udp_and_tcp() {
    if !root_or_skip("engine_names_are_answered_locally_over_udp_and_tcp") {
        return;
    }
    let upstream = Upstream::start().await;
    let netns = Netns::new("local");
    let _server = start(&netns, vec![upstream.addr]);
    let ns = netns.path();

    let web = udp_ask(&ns, "web", TYPE_A);
    assert_eq!(web.rcode(), 0);
    assert_eq!(
        web.flags & 0x8580,
        0x8580,
        "QR, AA, RD, RA: {:#x}",
        web.flags
    );
    assert_eq!(web.ips(), [Ipv4Addr::new(10, 9, 0, 2)]);
    assert_eq!(web.answers[0].1, 600, "TTL");
    assert_eq!(
        udp_ask(&ns, "db", TYPE_A).ips(),
        [Ipv4Addr::new(10, 9, 0, 3)]
    );

    let mixed = udp_ask(&ns, "WeB.", TYPE_A);
    assert_eq!(mixed.question.0, "WeB", "the question is echoed as asked");
    assert_eq!(mixed.ips(), [Ipv4Addr::new(10, 9, 0, 2)]);

    let aaaa = udp_ask(&ns, "web", TYPE_AAAA);
    assert_eq!((aaaa.rcode(), aaaa.answers.len()), (0, 0));

    let ptr = udp_ask(&ns, "2.0.9.10.in-addr.arpa", TYPE_PTR);
    assert_eq!(ptr.answers.len(), 1);
    assert_eq!(
        (ptr.answers[0].0, ptr.answers[0].2.as_slice()),
        (TYPE_PTR, &b"\x03web\x00"[..])
    );

    let replies = tcp_ask(
        &ns,
        vec![
            query(1, "web", TYPE_A),
            query(2, "db", TYPE_A),
            query(3, "web", TYPE_AAAA),
        ],
    )
    .unwrap();
    assert_eq!(replies.iter().map(|r| r.id).collect::<Vec<_>>(), [1, 2, 3]);
    assert_eq!(replies[0].ips(), [Ipv4Addr::new(10, 9, 0, 2)]);
    assert_eq!(replies[1].ips(), [Ipv4Addr::new(10, 9, 0, 3)]);
    assert_eq!((replies[2].rcode(), replies[2].answers.len()), (0, 0));

    assert!(
        upstream.log.lock().unwrap().is_empty(),
        "engine names reached the upstream: {:?}",
        upstream.log.lock().unwrap()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_names_are_forwarded_over_the_same_transport() {
    if !root_or_skip("other_names_are_forwarded_over_the_same_transport") {
        return;
    }
    let upstream = Upstream::start().await;
    let netns = Netns::new("fwd");
    let _server = start(&netns, vec![upstream.addr]);
    let ns = netns.path();

    let outside = udp_ask(&ns, "outside.test", TYPE_A);
    assert_eq!(outside.rcode(), 0);
    assert_eq!(outside.ips(), [Ipv4Addr::new(192, 0, 2, 7)]);
    assert_eq!(
        outside.answers[0].1, 60,
        "the upstream's reply is relayed unchanged"
    );
    assert_eq!(
        udp_ask(&ns, "nowhere.test", TYPE_A).rcode(),
        3,
        "NXDOMAIN relayed"
    );
    let unknown_ptr = udp_ask(&ns, "9.9.9.10.in-addr.arpa", TYPE_PTR);
    assert_eq!(unknown_ptr.rcode(), 0);

    let replies = tcp_ask(&ns, vec![query(7, "outside.test", TYPE_A)]).unwrap();
    assert_eq!(replies[0].ips(), [Ipv4Addr::new(192, 0, 2, 7)]);

    let log = upstream.log.lock().unwrap().clone();
    assert_eq!(
        log,
        [
            ("outside.test".to_string(), TYPE_A, "udp"),
            ("nowhere.test".to_string(), TYPE_A, "udp"),
            ("9.9.9.10.in-addr.arpa".to_string(), TYPE_PTR, "udp"),
            ("outside.test".to_string(), TYPE_A, "tcp"),
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn busybox_nslookup_in_the_namespace() {
    if !root_or_skip("busybox_nslookup_in_the_namespace") {
        return;
    }
    let upstream = Upstream::start().await;
    let netns = Netns::new("busybox");
    let _server = start(&netns, vec![upstream.addr]);

    let nslookup = |args: &[&str]| {
        let out = Command::new("timeout")
            .args([
                "20",
                "ip",
                "netns",
                "exec",
                &netns.name,
                "/bin/busybox",
                "nslookup",
            ])
            .args(args)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        println!("nslookup {args:?}: {}\n{text}", out.status);
        text
    };
    assert!(nslookup(&["web", "127.0.0.11"]).contains("Address: 10.9.0.2"));
    assert!(nslookup(&["db", "127.0.0.11"]).contains("Address: 10.9.0.3"));
    assert!(nslookup(&["outside.test", "127.0.0.11"]).contains("Address: 192.0.2.7"));
    assert!(nslookup(&["10.9.0.2", "127.0.0.11"]).contains("name = web"));
    assert_eq!(upstream.count("web"), 0, "web's AAAA query was forwarded");
    assert!(upstream.count("outside.test") >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn servfail_when_no_upstream_answers() {
    if !root_or_skip("servfail_when_no_upstream_answers") {
        return;
    }
    let netns = Netns::new("servfail");
    let ns = netns.path();
    // An upstream that never answers, and one where nothing listens.
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let closed = {
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        socket.local_addr().unwrap()
    };
    let silent_addr = silent.local_addr().unwrap();

    let server = start(&netns, vec![]);
    let none = udp_ask(&ns, "outside.test", TYPE_A);
    assert_eq!(none.rcode(), 2, "SERVFAIL without upstreams");
    assert_eq!(none.question, ("outside.test".to_string(), TYPE_A));
    assert_eq!(
        tcp_ask(&ns, vec![query(5, "outside.test", TYPE_A)]).unwrap()[0].rcode(),
        2
    );
    assert_eq!(
        udp_ask(&ns, "web", TYPE_A).ips(),
        [Ipv4Addr::new(10, 9, 0, 2)]
    );
    server.shutdown().await;

    let _server = start(&netns, vec![closed, silent_addr]);
    let started = Instant::now();
    assert_eq!(udp_ask(&ns, "outside.test", TYPE_A).rcode(), 2);
    println!(
        "SERVFAIL after a refused and a silent upstream: {:?}",
        started.elapsed()
    );

    // The next upstream is asked after one times out.
    let upstream = Upstream::start().await;
    let _server = {
        drop(_server);
        wait_closed(&ns);
        start(&netns, vec![silent_addr, upstream.addr])
    };
    assert_eq!(
        udp_ask(&ns, "outside.test", TYPE_A).ips(),
        [Ipv4Addr::new(192, 0, 2, 7)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_queries_get_formerr_or_nothing() {
    if !root_or_skip("malformed_queries_get_formerr_or_nothing") {
        return;
    }
    let netns = Netns::new("malformed");
    let ns = netns.path();
    let _server = start(&netns, vec![]);

    let short = udp_raw(&ns, vec![1, 2, 3], Duration::from_millis(300));
    assert!(short.is_err(), "a reply to 3 bytes: {short:?}");
    let mut truncated = query(0x77, "web", TYPE_A);
    truncated.truncate(truncated.len() - 3);
    let reply = udp_raw(&ns, truncated, REPLY_WAIT).unwrap();
    assert_eq!(u16::from_be_bytes([reply[0], reply[1]]), 0x77);
    assert_eq!(reply[3] & 0xf, 1, "FORMERR");
    let mut looping = query(0x78, "", TYPE_A);
    looping.splice(12..13, [0xc0, 12]);
    assert_eq!(udp_raw(&ns, looping, REPLY_WAIT).unwrap()[3] & 0xf, 1);
    // Still serving.
    assert_eq!(
        parse(&udp_raw(&ns, query(1, "db", TYPE_A), REPLY_WAIT).unwrap())
            .ips()
            .len(),
        1
    );
}

/// Whether TCP 127.0.0.11:53 in `netns` refuses connections.
fn refused(netns: &Path) -> bool {
    let addr = SocketAddr::from((berth_network::dns::ADDRESS, 53));
    dnskit::in_netns(netns, move || {
        std::net::TcpStream::connect_timeout(&addr, REPLY_WAIT)
            .is_err_and(|e| e.kind() == ErrorKind::ConnectionRefused)
    })
}

/// Waits (at most 2 s) until a dropped server's port is closed.
fn wait_closed(netns: &Path) {
    let deadline = Instant::now() + Duration::from_secs(2);
    while !refused(netns) {
        assert!(Instant::now() < deadline, "the port stayed open");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_the_server_closes_its_sockets() {
    if !root_or_skip("stopping_the_server_closes_its_sockets") {
        return;
    }
    let mut netns = Netns::new("stop");
    let ns = netns.path();

    let server = start(&netns, vec![]);
    // An idle TCP connection must not keep the server's sockets alive.
    let idle = dnskit::in_netns(&ns, || {
        std::net::TcpStream::connect((berth_network::dns::ADDRESS, 53)).unwrap()
    });
    assert!(!refused(&ns));
    server.shutdown().await;
    assert!(refused(&ns), "TCP still open after shutdown");
    let udp = udp_raw(&ns, query(1, "web", TYPE_A), Duration::from_millis(300));
    assert!(udp.is_err(), "a UDP reply after shutdown: {udp:?}");
    idle.set_read_timeout(Some(REPLY_WAIT)).unwrap();
    let mut buf = [0u8; 1];
    assert_eq!(
        std::io::Read::read(&mut &idle, &mut buf).unwrap_or(0),
        0,
        "connection not closed"
    );

    // The address is free again; a dropped server closes too.
    let server = start(&netns, vec![]);
    assert_eq!(
        udp_ask(&ns, "web", TYPE_A).ips(),
        [Ipv4Addr::new(10, 9, 0, 2)]
    );
    drop(server);
    wait_closed(&ns);
    assert!(netns.delete(), "ip netns delete failed");
    assert!(!ns.exists());
}
