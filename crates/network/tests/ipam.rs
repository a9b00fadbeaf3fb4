#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions unwrap too
//! Addresses persist across a reopen and are released on detach; overlapping subnets and taken
//! names are refused; default subnets avoid the host's routes, other networks and docker0.

mod common;

use std::net::Ipv4Addr;

use berth_network::ipam::subnets;
use berth_network::netlink::Netlink;
use berth_network::{AttachRequest, NetworkSpec, OPT_BRIDGE_NAME};
use common::{root_or_skip, Env};

fn request(container: &str, netns: &std::path::Path, ip: Option<Ipv4Addr>) -> AttachRequest {
    AttachRequest {
        network: "pool".to_string(),
        container_id: container.to_string(),
        netns: netns.to_path_buf(),
        interface: "eth0".to_string(),
        ip,
        ip6: None,
        mac: None,
        link_local: Vec::new(),
        ports: Vec::new(),
        default_route: true,
    }
}

#[tokio::test]
async fn addresses_persist_across_reopen_and_are_released() {
    if !root_or_skip("addresses_persist_across_reopen_and_are_released") {
        return;
    }
    let mut env = Env::new("e").await;
    let spec = NetworkSpec {
        name: "pool".to_string(),
        subnet: Some("10.213.7.0/24".parse().unwrap()),
        ip_range: Some("10.213.7.128/25".parse().unwrap()),
        options: [(OPT_BRIDGE_NAME.to_string(), env.bridge(0))].into(),
        ..NetworkSpec::default()
    };
    let net = env.nets.create(spec).await.unwrap();
    let (x, y, z) = (env.netns("x"), env.netns("y"), env.netns("z"));
    let fixed = Ipv4Addr::new(10, 213, 7, 10);
    let ex = env
        .attach_req(request("ctr-x", &x, Some(fixed)))
        .await
        .unwrap();
    let ey = env.attach_req(request("ctr-y", &y, None)).await.unwrap();
    assert_eq!(ex.ip, fixed);
    assert_eq!(ey.ip, Ipv4Addr::new(10, 213, 7, 128));
    let record = env.dir.path().join(format!("state/ipam/{}.json", net.id));
    assert!(std::fs::read_to_string(&record)
        .unwrap()
        .contains("10.213.7.10"));

    env.reopen().await;
    let both = vec![("ctr-x".to_string(), fixed), ("ctr-y".to_string(), ey.ip)];
    assert_eq!(env.nets.endpoints("pool").await.unwrap(), both);
    let err = env
        .attach_req(request("ctr-z", &z, Some(fixed)))
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "Address already in use");
    let err = env
        .attach_req(request("ctr-z", &z, Some(Ipv4Addr::new(10, 9, 9, 9))))
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "no configured subnet or ip-range contain the IP address 10.9.9.9"
    );
    let err = env
        .attach_req(request("ctr-x", &z, None))
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "endpoint with name ctr-x already exists in network pool"
    );

    env.nets.detach("pool", "ctr-x").await.unwrap();
    env.reopen().await;
    assert_eq!(
        env.nets.endpoints("pool").await.unwrap(),
        vec![("ctr-y".to_string(), ey.ip)]
    );
    let err = env.nets.detach("pool", "ctr-x").await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "container ctr-x is not connected to network pool"
    );
    // The released fixed address can be taken again.
    let ez = env
        .attach_req(request("ctr-z", &z, Some(fixed)))
        .await
        .unwrap();
    assert_eq!(ez.ip, fixed);
}

#[tokio::test]
async fn overlapping_subnets_and_taken_names_are_refused() {
    if !root_or_skip("overlapping_subnets_and_taken_names_are_refused") {
        return;
    }
    let env = Env::new("f").await;
    env.network("one", 0, "10.213.8.0/24", false).await;
    let overlapping = NetworkSpec {
        name: "two".to_string(),
        subnet: Some("10.213.8.128/25".parse().unwrap()),
        options: [(OPT_BRIDGE_NAME.to_string(), env.bridge(1))].into(),
        ..NetworkSpec::default()
    };
    let err = env.nets.create(overlapping.clone()).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "Pool overlaps with other one on this address space"
    );
    let same_name = NetworkSpec {
        name: "one".to_string(),
        subnet: Some("10.213.10.0/24".parse().unwrap()),
        ..overlapping
    };
    let err = env.nets.create(same_name).await.unwrap_err();
    assert_eq!(err.to_string(), "network with name one already exists");
    // Nothing was left of the refused networks.
    assert_eq!(env.nets.list().await.len(), 1);
    let host = Netlink::host().unwrap();
    assert_eq!(host.link_index(&env.bridge(1)).await.unwrap(), None);
    assert_eq!(
        env.nets.get("missing").await.unwrap_err().to_string(),
        "network missing not found"
    );
}

#[tokio::test]
async fn default_subnets_avoid_routes_other_networks_and_docker0() {
    if !root_or_skip("default_subnets_avoid_routes_other_networks_and_docker0") {
        return;
    }
    let env = Env::new("g").await;
    let routes = Netlink::host().unwrap().ipv4_routes().await.unwrap();
    let spec = |name: &str, n: u32, default_bridge: bool| NetworkSpec {
        name: name.to_string(),
        default_bridge,
        options: [(OPT_BRIDGE_NAME.to_string(), env.bridge(n))].into(),
        ..NetworkSpec::default()
    };
    let bridge = env.nets.create(spec("bridge", 0, true)).await.unwrap();
    let user = env.nets.create(spec("user", 1, false)).await.unwrap();
    assert_ne!(bridge.subnet, subnets::DOCKER0);
    assert_eq!(
        bridge.gateway,
        Ipv4Addr::from(u32::from(bridge.subnet.network()) + 1)
    );
    assert!(!subnets::overlaps(&bridge.subnet, &user.subnet));
    for net in [&bridge, &user] {
        assert!(subnets::default_pools().any(|p| p == net.subnet));
        for route in &routes {
            assert!(
                !subnets::overlaps(&net.subnet, route),
                "{} overlaps {route}",
                net.subnet
            );
        }
    }
}
