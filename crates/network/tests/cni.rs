#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions unwrap too
//! Networks backed by CNI plugins, with Debian's containernetworking-plugins (`bridge` and
//! `host-local` in /usr/lib/cni): two namespaces on a CNI bridge reach each other, addresses
//! come from the conflist's range and go back to it on detach (also after a restart and when
//! the namespace is gone), and a failing plugin's error comes back with nothing left behind.
//! Each test's bridge is named with its [`Env`] prefix, so `Env`'s drop removes it.

mod cnikit;
mod common;

use std::net::Ipv4Addr;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use berth_network::cni::{Cni, CniError, DEFAULT_PATH};
use berth_network::PublishedPort;
use berth_network::{NetworkError, NetworkSpec, PortBinding, Proto, DRIVER_CNI};
use cnikit::{
    conflist, create, free_port, host_address, persisted, plugins_or_skip, portmap_rules, ports_of,
    reserved, DelGuard,
};
use common::{tcp_get, tcp_server, udp_get, udp_server, Env};

/// The plugins of the plain tests.
const BRIDGE: &[&str] = &["bridge", "host-local"];

#[tokio::test]
async fn cni_bridge_connects_namespaces_and_gives_addresses_back() {
    if !plugins_or_skip(
        "cni_bridge_connects_namespaces_and_gives_addresses_back",
        BRIDGE,
    ) {
        return;
    }
    let mut env = Env::new("c").await;
    let bridge = env.bridge(0);
    // Two addresses only, so that a released one is the next one given.
    let file = conflist(&env, "two", &bridge, "10.214.1.0/24", (2, 3), "");
    let net = create(&env, "cninet", &file).await.unwrap();
    assert_eq!(net.driver, "cni");
    assert_eq!(net.subnet, "10.214.1.0/24".parse().unwrap());
    assert_eq!(net.gateway, Ipv4Addr::new(10, 214, 1, 1));
    assert_eq!(net.bridge, bridge, "the bridge is the network's to delete");
    // The record holds the conflist: the file may go away.
    std::fs::remove_file(&file).unwrap();

    let (a, b) = (env.netns("a"), env.netns("b"));
    let ea = env.attach("cninet", "ctr-a", &a, vec![]).await.unwrap();
    let eb = env.attach("cninet", "ctr-b", &b, vec![]).await.unwrap();
    let mut got = [ea.ip, eb.ip];
    got.sort();
    assert_eq!(
        got,
        [Ipv4Addr::new(10, 214, 1, 2), Ipv4Addr::new(10, 214, 1, 3)]
    );
    assert_eq!(
        (ea.prefix_len, ea.gateway),
        (24, Ipv4Addr::new(10, 214, 1, 1))
    );
    assert_eq!(ea.mac.len(), 17, "{ea:?}");
    assert!(ea.host_veth.starts_with("veth"), "{ea:?}");
    assert!(ports_of(&bridge).contains(&ea.host_veth));
    assert_eq!(env.nets.endpoints("cninet").await.unwrap().len(), 2);
    assert_eq!(reserved(&env, "two"), got.to_vec());

    let _servers = [
        tcp_server(&a, 7000, "from a"),
        tcp_server(&b, 7000, "from b"),
    ];
    assert_eq!(tcp_get(Some(&a), eb.ip, 7000).unwrap(), "from b");
    assert_eq!(tcp_get(Some(&b), ea.ip, 7000).unwrap(), "from a");

    // Attached twice, full, published ports, removal while in use: refused.
    let again = env.attach("cninet", "ctr-a", &a, vec![]).await.unwrap_err();
    assert!(
        matches!(again, NetworkError::AlreadyAttached { .. }),
        "{again}"
    );
    let c = env.netns("c");
    let full = env.attach("cninet", "ctr-c", &c, vec![]).await.unwrap_err();
    assert!(
        full.to_string().contains("no IP addresses available"),
        "{full}"
    );
    assert_eq!(env.nets.endpoints("cninet").await.unwrap().len(), 2);
    let port = PortBinding {
        proto: Proto::Tcp,
        host_ip: None,
        host_port: None,
        container_port: 80,
    };
    let ports = env
        .attach("cninet", "ctr-c", &c, vec![port])
        .await
        .unwrap_err();
    assert!(
        ports
            .to_string()
            .starts_with("port publishing is not supported on cni network cninet: "),
        "{ports}"
    );
    let busy = env.nets.remove("cninet").await.unwrap_err();
    assert!(
        matches!(busy, NetworkError::ActiveEndpoints { .. }),
        "{busy}"
    );

    // Detach gives the address back: the next attach gets it.
    env.nets.detach("cninet", "ctr-b").await.unwrap();
    assert_eq!(reserved(&env, "two"), vec![ea.ip]);
    assert!(!ports_of(&bridge).contains(&eb.host_veth));
    let ec = env.attach("cninet", "ctr-c", &c, vec![]).await.unwrap();
    assert_eq!(ec.ip, eb.ip);

    // After a restart, DEL finds its cached result; with the namespace gone, host-local
    // still releases the address.
    env.reopen().await;
    env.nets.detach("cninet", "ctr-a").await.unwrap();
    nix::mount::umount2(&c, nix::mount::MntFlags::MNT_DETACH).unwrap();
    env.nets.detach_exited("cninet", "ctr-c").await.unwrap();
    assert!(reserved(&env, "two").is_empty());
    assert!(env.nets.endpoints("cninet").await.unwrap().is_empty());
    let gone = env.nets.detach("cninet", "ctr-c").await.unwrap_err();
    assert!(matches!(gone, NetworkError::NotAttached { .. }), "{gone}");

    env.nets.remove("cninet").await.unwrap();
    assert!(!Path::new("/sys/class/net").join(&bridge).exists());
    assert!(!env.dir.path().join("state/cni").join(&net.id).exists());
}

fn tcp(host_port: Option<u16>, container_port: u16) -> PortBinding {
    PortBinding {
        proto: Proto::Tcp,
        host_ip: None,
        host_port,
        container_port,
    }
}

#[tokio::test]
async fn portmap_publishes_ports_and_del_removes_its_rules() {
    if !plugins_or_skip(
        "portmap_publishes_ports_and_del_removes_its_rules",
        &["bridge", "host-local", "portmap"],
    ) {
        return;
    }
    let mut env = Env::new("p").await;
    let bridge = env.bridge(0);
    let extra = r#", {"type": "portmap", "capabilities": {"portMappings": true}, "snat": true}"#;
    let file = conflist(&env, "pm", &bridge, "10.214.4.0/24", (2, 20), extra);
    let net = create(&env, "pmnet", &file).await.unwrap();
    // Runs DEL for whatever is still attached when the test ends, before `env`'s cleanup.
    let _del = DelGuard::new(&env, &net);

    let (a, b, c) = (env.netns("a"), env.netns("b"), env.netns("c"));
    let _servers = [
        tcp_server(&a, 7000, "from a"),
        tcp_server(&b, 7000, "from b"),
        udp_server(&a, 7001, "udp from a"),
    ];
    let (p, q) = (free_port(), free_port());
    let udp = PortBinding {
        proto: Proto::Udp,
        host_ip: None,
        host_port: Some(q),
        container_port: 7001,
    };
    let ea = env
        .attach("pmnet", "ctr-pa", &a, vec![tcp(Some(p), 7000), udp])
        .await
        .unwrap();
    let published = |proto, host_port, container_port| PublishedPort {
        proto,
        host_ip: Ipv4Addr::UNSPECIFIED.into(),
        host_port,
        container_ip: ea.ip.into(),
        container_port,
    };
    assert_eq!(
        ea.ports,
        [
            published(Proto::Tcp, p, 7000),
            published(Proto::Udp, q, 7001)
        ]
    );
    let rules = portmap_rules("ctr-pa");
    assert!(
        rules.iter().any(|r| r.contains("DNAT")),
        "no DNAT rule: {rules:?}"
    );

    // From the host: to the bridge's gateway, to the host's own address, and (portmap sets
    // route_localnet on the bridge and masquerades 127.0.0.1 with snat) to 127.0.0.1.
    let gateway = ea.gateway;
    assert_eq!(tcp_get(None, gateway, p).unwrap(), "from a");
    assert_eq!(tcp_get(None, host_address(), p).unwrap(), "from a");
    assert_eq!(tcp_get(None, Ipv4Addr::LOCALHOST, p).unwrap(), "from a");
    assert_eq!(udp_get(gateway, q).unwrap(), "udp from a");

    // The port table is the bridges': a taken port is refused before any plugin runs, a
    // random one comes from the ephemeral range.
    let taken = env
        .attach("pmnet", "ctr-pb", &b, vec![tcp(Some(p), 7000)])
        .await
        .unwrap_err();
    assert!(
        taken.to_string().contains("port is already allocated"),
        "{taken}"
    );
    assert_eq!(reserved(&env, "pm"), vec![ea.ip]);
    let eb = env
        .attach("pmnet", "ctr-pb", &b, vec![tcp(None, 7000)])
        .await
        .unwrap();
    let r = eb.ports[0].host_port;
    assert!(r != p && r >= 1024, "{:?}", eb.ports);
    assert_eq!(tcp_get(None, gateway, r).unwrap(), "from b");

    // After a restart the ports are still taken (from the records), and DEL gets the
    // mappings from its record: the rules go.
    env.reopen().await;
    let taken = env
        .attach("pmnet", "ctr-pc", &c, vec![tcp(Some(r), 7000)])
        .await
        .unwrap_err();
    assert!(
        taken.to_string().contains("port is already allocated"),
        "{taken}"
    );
    env.nets.detach("pmnet", "ctr-pa").await.unwrap();
    assert_eq!(portmap_rules("ctr-pa"), Vec::<String>::new());
    assert!(tcp_get(None, gateway, p).is_err());
    // With the namespace gone, DEL still removes them.
    assert!(!portmap_rules("ctr-pb").is_empty());
    nix::mount::umount2(&b, nix::mount::MntFlags::MNT_DETACH).unwrap();
    env.nets.detach_exited("pmnet", "ctr-pb").await.unwrap();
    assert_eq!(portmap_rules("ctr-pb"), Vec::<String>::new());

    // The ports are free again.
    let ec = env
        .attach(
            "pmnet",
            "ctr-pc",
            &c,
            vec![tcp(Some(p), 7000), tcp(Some(r), 7002)],
        )
        .await
        .unwrap();
    assert_eq!(ec.ports.len(), 2);
    env.nets.detach("pmnet", "ctr-pc").await.unwrap();
    assert_eq!(portmap_rules("ctr-pc"), Vec::<String>::new());
    assert!(reserved(&env, "pm").is_empty());
    env.nets.remove("pmnet").await.unwrap();
}

#[tokio::test]
async fn a_failing_plugin_gives_its_error_and_leaves_nothing() {
    if !plugins_or_skip(
        "a_failing_plugin_gives_its_error_and_leaves_nothing",
        BRIDGE,
    ) {
        return;
    }
    let mut env = Env::new("f").await;
    let plugins = env.dir.path().join("plugins");
    std::fs::create_dir(&plugins).unwrap();
    let script = |name: &str, add: &str| {
        let path = plugins.join(name);
        let text =
            format!("#!/bin/sh\ncat >/dev/null\n[ \"$CNI_COMMAND\" = ADD ] || exit 0\n{add}\n");
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    };
    script(
        "fail",
        r#"echo '{"cniVersion":"1.0.0","code":7,"msg":"no luck","details":"always"}'; exit 1"#,
    );
    script("slow", "exec sleep 30");
    let mut path = vec![plugins.clone()];
    path.extend(std::env::split_paths(DEFAULT_PATH));
    env.nets.set_cni(
        Cni::new()
            .with_path(path)
            .with_timeout(Duration::from_secs(1)),
    );
    let bridge = env.bridge(0);

    for (plugin, words) in [
        ("fail", "no luck: always (code 7)"),
        ("slow", "did not finish"),
    ] {
        let extra = format!(r#", {{"type": "{plugin}"}}"#);
        let file = conflist(&env, plugin, &bridge, "10.214.2.0/24", (2, 20), &extra);
        create(&env, plugin, &file).await.unwrap();
        let netns = env.netns(plugin);
        let e = env.attach(plugin, "ctr", &netns, vec![]).await.unwrap_err();
        assert!(e.to_string().contains(words), "{plugin}: {e}");
        if plugin == "fail" {
            assert!(
                matches!(&e, NetworkError::Cni(CniError::Plugin { code: 7, .. })),
                "{e:?}"
            );
        }
        // The bridge and host-local ran before the failing plugin: undone.
        assert!(reserved(&env, plugin).is_empty(), "{plugin}");
        assert_eq!(ports_of(&bridge), Vec::<String>::new(), "{plugin}");
        assert!(env.nets.endpoints(plugin).await.unwrap().is_empty());
        env.nets.remove(plugin).await.unwrap();
    }
}

#[tokio::test]
async fn bad_conflists_are_refused_and_nothing_is_stored() {
    if !plugins_or_skip("bad_conflists_are_refused_and_nothing_is_stored", BRIDGE) {
        return;
    }
    let env = Env::new("b").await;
    let dir = env.dir.path();
    let write = |name: &str, text: &str| {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    };
    let unknown = write(
        "unknown.conflist",
        r#"{"cniVersion":"1.0.0","name":"u","plugins":[{"type":"no-such-plugin"}]}"#,
    );
    let bad_json = write("bad.conflist", "{\"cniVersion\": ");
    let old = write(
        "old.conflist",
        r#"{"cniVersion":"0.2.0","name":"o","plugins":[{"type":"bridge"}]}"#,
    );
    for (path, words) in [
        (unknown, "cni plugin \"no-such-plugin\" not found in "),
        (bad_json, "invalid cni conflist: "),
        (old, "not supported"),
        (dir.join("missing.conflist"), "reading the cni conflist"),
    ] {
        let e = create(&env, "bad", &path).await.unwrap_err();
        assert!(e.to_string().contains(words), "{}: {e}", path.display());
        assert!(matches!(&e, NetworkError::Cni(c) if c.is_config()), "{e:?}");
    }
    let spec = NetworkSpec {
        name: "bad".to_string(),
        driver: DRIVER_CNI.to_string(),
        ..NetworkSpec::default()
    };
    let e = env.nets.create(spec.clone()).await.unwrap_err();
    assert!(e.to_string().contains("cni.conflist=PATH"), "{e}");
    let e = env
        .nets
        .create(NetworkSpec {
            subnet: Some("10.214.3.0/24".parse().unwrap()),
            ..spec
        })
        .await
        .unwrap_err();
    assert!(
        e.to_string().contains("not supported with the cni driver"),
        "{e}"
    );
    assert!(env.nets.list().await.is_empty());
    assert!(persisted(dir).is_empty());
}
