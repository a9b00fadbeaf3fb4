#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions unwrap too
//! Published ports: TCP and UDP answer from the host over 127.0.0.1 and over the bridge's
//! address, and from containers on the same bridge (hairpin); taken ports are refused.

mod common;

use std::net::Ipv4Addr;

use berth_network::{PortBinding, Proto};
use common::{root_or_skip, tcp_get, tcp_server, udp_get, udp_server, Env};

/// Host ports of this test process, unlikely to be in use.
fn base_port() -> u16 {
    20000 + (std::process::id() % 1000) as u16 * 10
}

fn publish(proto: Proto, host_port: Option<u16>, container_port: u16) -> PortBinding {
    PortBinding {
        proto,
        host_ip: None,
        host_port,
        container_port,
    }
}

#[tokio::test]
async fn published_ports_answer_from_host_localhost_and_hairpin() {
    if !root_or_skip("published_ports_answer_from_host_localhost_and_hairpin") {
        return;
    }
    let env = Env::new("c").await;
    let net = env.network("web", 0, "10.213.5.0/24", false).await;
    let (tcp, udp) = (base_port(), base_port() + 1);
    let (a, b) = (env.netns("a"), env.netns("b"));
    let ports = vec![
        publish(Proto::Tcp, Some(tcp), 80),
        publish(Proto::Udp, Some(udp), 53),
    ];
    let ea = env.attach("web", "ctr-a", &a, ports).await.unwrap();
    assert_eq!(ea.ports.len(), 2);
    env.attach("web", "ctr-b", &b, vec![]).await.unwrap();
    let _servers = (tcp_server(&a, 80, "web"), udp_server(&a, 53, "dns"));

    assert_eq!(tcp_get(None, Ipv4Addr::LOCALHOST, tcp).unwrap(), "web");
    assert_eq!(tcp_get(None, net.gateway, tcp).unwrap(), "web");
    assert_eq!(udp_get(Ipv4Addr::LOCALHOST, udp).unwrap(), "dns");
    assert_eq!(udp_get(net.gateway, udp).unwrap(), "dns");
    // Hairpin: a neighbour, and the container itself, through the host's address.
    assert_eq!(tcp_get(Some(&b), net.gateway, tcp).unwrap(), "web");
    assert_eq!(tcp_get(Some(&a), net.gateway, tcp).unwrap(), "web");

    // Unpublished with the container: nothing answers any more.
    env.nets.detach("web", "ctr-a").await.unwrap();
    assert!(tcp_get(None, Ipv4Addr::LOCALHOST, tcp).is_err());
}

#[tokio::test]
async fn taken_ports_are_refused_and_random_ports_are_given() {
    if !root_or_skip("taken_ports_are_refused_and_random_ports_are_given") {
        return;
    }
    let env = Env::new("d").await;
    env.network("web", 0, "10.213.6.0/24", false).await;
    let port = base_port() + 2;
    let (a, b) = (env.netns("a"), env.netns("b"));
    env.attach(
        "web",
        "ctr-a",
        &a,
        vec![publish(Proto::Tcp, Some(port), 80)],
    )
    .await
    .unwrap();
    let err = env
        .attach(
            "web",
            "ctr-b",
            &b,
            vec![publish(Proto::Tcp, Some(port), 80)],
        )
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("Bind for 0.0.0.0:{port} failed: port is already allocated")
    );
    let attached: Vec<_> = env.nets.endpoints("web").await.unwrap();
    assert_eq!(attached.len(), 1, "the refused attach left an endpoint");

    // The same port for UDP, and a random TCP port, are fine; and survive a reopen.
    let eb = env
        .attach(
            "web",
            "ctr-b",
            &b,
            vec![
                publish(Proto::Udp, Some(port), 53),
                publish(Proto::Tcp, None, 80),
            ],
        )
        .await
        .unwrap();
    let random = eb.ports[1].host_port;
    assert_ne!(random, port);
    let _server = tcp_server(&b, 80, "random");
    assert_eq!(
        tcp_get(None, Ipv4Addr::LOCALHOST, random).unwrap(),
        "random"
    );

    let mut env = env;
    env.reopen().await;
    let c = env.netns("c");
    let err = env
        .attach(
            "web",
            "ctr-c",
            &c,
            vec![publish(Proto::Tcp, Some(random), 80)],
        )
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("port is already allocated"),
        "{err}"
    );
}
