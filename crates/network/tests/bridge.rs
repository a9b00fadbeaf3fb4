#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions unwrap too
//! Containers on one bridge reach each other; other bridges cannot reach them; outbound traffic
//! is masqueraded, and internal networks keep to themselves.

mod common;

use std::net::Ipv4Addr;
use std::os::fd::AsFd;

use berth_network::netlink::{ContainerSide, Netlink, VethPair};
use common::{root_or_skip, tcp_get, tcp_server, Env};

#[tokio::test]
async fn one_bridge_connects_other_bridges_are_isolated() {
    if !root_or_skip("one_bridge_connects_other_bridges_are_isolated") {
        return;
    }
    let env = Env::new("a").await;
    env.network("front", 0, "10.213.1.0/24", false).await;
    env.network("back", 1, "10.213.2.0/24", false).await;
    let (a, b, c) = (env.netns("a"), env.netns("b"), env.netns("c"));
    let ea = env.attach("front", "ctr-a", &a, vec![]).await.unwrap();
    let eb = env.attach("front", "ctr-b", &b, vec![]).await.unwrap();
    let ec = env.attach("back", "ctr-c", &c, vec![]).await.unwrap();
    assert_eq!(ea.ip, Ipv4Addr::new(10, 213, 1, 2));
    assert_eq!(eb.ip, Ipv4Addr::new(10, 213, 1, 3));
    assert_eq!(ea.gateway, Ipv4Addr::new(10, 213, 1, 1));
    assert_eq!(ea.mac, "02:42:0a:d5:01:02");

    let _servers = [
        tcp_server(&a, 7000, "from a"),
        tcp_server(&b, 7000, "from b"),
        tcp_server(&c, 7000, "from c"),
    ];
    assert_eq!(tcp_get(Some(&a), eb.ip, 7000).unwrap(), "from b");
    assert_eq!(tcp_get(Some(&b), ea.ip, 7000).unwrap(), "from a");
    assert_eq!(tcp_get(None, ea.ip, 7000).unwrap(), "from a");
    assert_eq!(tcp_get(None, ec.ip, 7000).unwrap(), "from c");

    assert!(
        tcp_get(Some(&c), ea.ip, 7000).is_err(),
        "back reached front"
    );
    assert!(
        tcp_get(Some(&a), ec.ip, 7000).is_err(),
        "front reached back"
    );
}

/// A stand-in for the world outside: a plain bridge Berth does not manage, with one namespace
/// on it, made with the crate's netlink layer.
async fn outside(env: &Env) -> (std::path::PathBuf, Ipv4Addr) {
    let host = Netlink::host().unwrap();
    let bridge = env.bridge(9);
    let index = host
        .ensure_bridge(&bridge, "10.213.9.1/24".parse().unwrap(), None)
        .await
        .unwrap();
    let wan = env.netns("wan");
    let veth = format!("{}w", env.prefix);
    env.track_link(&veth);
    let file = std::fs::File::open(&wan).unwrap();
    host.add_veth(VethPair {
        host: &veth,
        bridge_index: index,
        netns: file.as_fd(),
        peer: "eth0",
        mac: [0x02, 0x42, 10, 213, 9, 2],
        mtu: 1500,
    })
    .await
    .unwrap();
    Netlink::in_netns(&wan)
        .unwrap()
        .configure_container_side(&ContainerSide {
            interface: "eth0".to_string(),
            address: "10.213.9.2/24".parse().unwrap(),
            gateway: Some(Ipv4Addr::new(10, 213, 9, 1)),
            address6: None,
            gateway6: None,
            extra: Vec::new(),
        })
        .await
        .unwrap();
    (wan, Ipv4Addr::new(10, 213, 9, 2))
}

#[tokio::test]
async fn outbound_is_masqueraded_and_internal_networks_stay_inside() {
    if !root_or_skip("outbound_is_masqueraded_and_internal_networks_stay_inside") {
        return;
    }
    let env = Env::new("b").await;
    env.network("open", 0, "10.213.3.0/24", false).await;
    env.network("closed", 1, "10.213.4.0/24", true).await;
    let (wan, wan_ip) = outside(&env).await;
    let _peer_echo = tcp_server(&wan, 7000, "");

    let o = env.netns("o");
    env.attach("open", "ctr-o", &o, vec![]).await.unwrap();
    let seen = tcp_get(Some(&o), wan_ip, 7000).unwrap();
    assert_eq!(seen, "10.213.9.1", "outbound traffic is not masqueraded");

    let (i1, i2) = (env.netns("i1"), env.netns("i2"));
    env.attach("closed", "ctr-i1", &i1, vec![]).await.unwrap();
    let e2 = env.attach("closed", "ctr-i2", &i2, vec![]).await.unwrap();
    let _inside = tcp_server(&i2, 7001, "inside");
    assert_eq!(tcp_get(Some(&i1), e2.ip, 7001).unwrap(), "inside");
    assert!(
        tcp_get(Some(&i1), wan_ip, 7000).is_err(),
        "internal reached outside"
    );
    assert!(
        tcp_get(Some(&wan), e2.ip, 7001).is_err(),
        "outside reached internal"
    );
}
