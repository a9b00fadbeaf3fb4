#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions unwrap too
//! Detaching and removing leave no link, rule, map element or record behind, also when the
//! container's namespace went first; networks with endpoints are not removed.

mod common;

use berth_network::netlink::Netlink;
use berth_network::{PortBinding, Proto, PublishedPort};
use common::{root_or_skip, ruleset, Env};

#[tokio::test]
async fn detach_and_remove_leave_nothing_behind() {
    if !root_or_skip("detach_and_remove_leave_nothing_behind") {
        return;
    }
    let env = Env::new("h").await;
    let table = env.prefix.clone();
    env.network("n0", 0, "10.213.11.0/24", false).await;
    env.network("n1", 1, "10.213.12.0/24", true).await;
    let (a, b) = (env.netns("a"), env.netns("b"));
    let port = PortBinding {
        proto: Proto::Udp,
        host_ip: Some("127.0.0.1".parse().unwrap()),
        host_port: Some(20000 + (std::process::id() % 1000) as u16 * 10 + 5),
        container_port: 53,
    };
    let ea = env.attach("n0", "ctr-a", &a, vec![port]).await.unwrap();
    let eb = env.attach("n1", "ctr-b", &b, vec![]).await.unwrap();
    let host = Netlink::host().unwrap();
    assert!(host.link_index(&ea.host_veth).await.unwrap().is_some());
    assert!(ruleset().contains("10.213.11.2 . 53"));

    let err = env.nets.remove("n0").await.unwrap_err();
    assert!(err.to_string().ends_with("has active endpoints"), "{err}");

    // b's namespace goes away before its detach (a container that died with the host's help).
    let mounted = b.clone();
    nix::mount::umount2(&mounted, nix::mount::MntFlags::MNT_DETACH).unwrap();
    env.nets.detach("n0", "ctr-a").await.unwrap();
    env.nets.detach("n1", "ctr-b").await.unwrap();
    env.nets.remove("n0").await.unwrap();
    env.nets.remove("n1").await.unwrap();

    for link in [&ea.host_veth, &eb.host_veth, &env.bridge(0), &env.bridge(1)] {
        assert_eq!(host.link_index(link).await.unwrap(), None, "{link} is left");
    }
    assert!(host.links_with_prefix(&table).await.unwrap().is_empty());
    let rules = ruleset();
    assert!(!rules.contains(&env.bridge(0)), "{rules}");
    assert!(!rules.contains("10.213.11."), "{rules}");
    assert!(!rules.contains("10.213.12."), "{rules}");
    assert!(env.nets.firewall().bridges().await.unwrap().is_empty());
    assert!(env.nets.firewall().published().await.unwrap().is_empty());
    for dir in ["networks", "ipam"] {
        let left = std::fs::read_dir(env.dir.path().join("state").join(dir))
            .unwrap()
            .count();
        assert_eq!(left, 0, "records left in {dir}");
    }

    env.nets.firewall().delete_table().await.unwrap();
    assert!(!ruleset().contains(&format!("table ip {table} ")));
}

#[tokio::test]
async fn prune_detaches_containers_that_no_longer_exist() {
    if !root_or_skip("prune_detaches_containers_that_no_longer_exist") {
        return;
    }
    let env = Env::new("i").await;
    env.network("n0", 0, "10.213.13.0/24", false).await;
    let (a, b) = (env.netns("a"), env.netns("b"));
    env.attach("n0", "keep", &a, vec![]).await.unwrap();
    let gone = env.attach("n0", "gone", &b, vec![]).await.unwrap();
    let pruned = env.nets.prune(|id| id == "keep").await.unwrap();
    assert_eq!(pruned.len(), 1);
    assert_eq!(pruned[0].1, "gone");
    let left: Vec<_> = env.nets.endpoints("n0").await.unwrap();
    assert_eq!(left.len(), 1);
    let host = Netlink::host().unwrap();
    assert_eq!(host.link_index(&gone.host_veth).await.unwrap(), None);
}

#[tokio::test]
async fn a_create_cut_short_by_a_crash_is_undone_or_finished_at_open() {
    if !root_or_skip("a_create_cut_short_by_a_crash_is_undone_or_finished_at_open") {
        return;
    }
    let mut env = Env::new("j").await;
    let state = env.dir.path().join("state");
    // A crash after the pool was written, before the record: the pool goes at open, and its
    // subnet is free again.
    let made = env.network("n0", 0, "10.213.14.0/24", false).await;
    let record = state.join("networks").join(format!("{}.json", made.id));
    let pool = state.join("ipam").join(format!("{}.json", made.id));
    let pool_text = std::fs::read(&pool).unwrap();
    env.nets.remove("n0").await.unwrap();
    std::fs::write(&pool, &pool_text).unwrap();
    env.reopen().await;
    assert!(!pool.exists());
    env.network("n1", 1, "10.213.14.0/24", false).await;

    // A crash after the record, before the bridge and rules: open makes them.
    let host = Netlink::host().unwrap();
    let n2 = env.network("n2", 2, "10.213.15.0/24", false).await;
    let record_text =
        std::fs::read(state.join("networks").join(format!("{}.json", n2.id))).unwrap();
    host.delete_link(&env.bridge(2)).await.unwrap();
    env.nets.firewall().delete_table().await.unwrap();
    assert_eq!(host.link_index(&env.bridge(2)).await.unwrap(), None);
    assert!(!ruleset().contains(&format!("chain in-{} ", env.bridge(2))));
    env.reopen().await;
    assert!(host.link_index(&env.bridge(2)).await.unwrap().is_some());
    assert!(ruleset().contains(&format!("chain in-{} ", env.bridge(2))));
    assert_eq!(
        std::fs::read(state.join("networks").join(format!("{}.json", n2.id))).unwrap(),
        record_text
    );
    assert!(!record.exists());
}

#[tokio::test]
async fn a_table_left_by_an_earlier_daemon_is_rebuilt_from_the_records() {
    if !root_or_skip("a_table_left_by_an_earlier_daemon_is_rebuilt_from_the_records") {
        return;
    }
    let mut env = Env::new("w").await;
    let host = Netlink::host().unwrap();
    // An earlier daemon (same table name) made a network, then its data root was wiped.
    env.network("old", 0, "10.213.40.0/24", false).await;
    let port = PublishedPort {
        proto: Proto::Tcp,
        host_ip: std::net::Ipv4Addr::UNSPECIFIED.into(),
        host_port: 18123,
        container_ip: "10.213.40.2".parse().unwrap(),
        container_port: 80,
    };
    env.nets.firewall().publish(&[port]).await.unwrap();
    std::fs::remove_dir_all(env.dir.path().join("state")).unwrap();
    env.reopen().await;
    // Nothing of it is left: its chains, its published port, its bridge.
    let rules = ruleset();
    assert!(
        !rules.contains(&format!("chain in-{} ", env.bridge(0))),
        "{rules}"
    );
    assert!(!rules.contains("18123"), "{rules}");
    assert_eq!(host.link_index(&env.bridge(0)).await.unwrap(), None);
    // And its subnet can be used again.
    env.network("new", 1, "10.213.40.0/24", false).await;
    assert!(ruleset().contains(&format!("chain in-{} ", env.bridge(1))));
}
