#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions unwrap too

//! The `berth` CLI's flags for what berthd gained (docker's names, syntax and errors), each
//! driven through `berth` against a test daemon and its effect read back with the real docker
//! CLI: `run/create --runtime`, `--link` (and `rm --link`), `--mac-address`, `--ip6`,
//! `--link-local-ip`, `--volume-driver`, `--storage-opt`; `network create --ipv6 --subnet
//! --gateway --aux-address`; `network connect --ip --ip6 --alias --link --link-local-ip
//! --driver-opt`; `volume create --driver -o`.

mod common;

use std::path::Path;
use std::process::Output;

use common::{skip, text, Daemon};

/// `berth ARGS`, which must succeed; its stdout.
fn berth_ok(d: &Daemon, args: &[&str]) -> String {
    let out = d.berth(args);
    let (stdout, stderr) = text(&out);
    assert!(
        out.status.success(),
        "berth {args:?} failed ({}): {stdout}{stderr}",
        out.status
    );
    stdout
}

/// `berth ARGS`, which must fail; its stderr.
fn berth_fails(d: &Daemon, args: &[&str]) -> String {
    let out: Output = d.berth(args);
    let (stdout, stderr) = text(&out);
    assert!(!out.status.success(), "berth {args:?} succeeded: {stdout}");
    stderr
}

/// `docker inspect -f FORMAT name`, trimmed.
fn inspect(d: &Daemon, format: &str, name: &str) -> String {
    d.ok(&["inspect", "-f", format, name]).trim().to_string()
}

/// An IPv6 /64 and an IPv4 /24 of this test process's own (parallel test processes make
/// networks too).
fn prefixes() -> (String, String) {
    let pid = std::process::id();
    (
        format!("fd00:{:x}:77::", 0x1000 + pid % 0xe000),
        format!("10.{}.250.", 20 + pid % 200),
    )
}

#[test]
fn runtime_volume_driver_and_storage_opt() {
    if skip() {
        return;
    }
    let runc = ["/usr/bin/runc", "/usr/sbin/runc", "/usr/local/bin/runc"]
        .iter()
        .any(|p| Path::new(p).exists());
    assert!(
        runc || std::env::var("CI").is_err(),
        "runc is not installed"
    );
    let d = Daemon::start();
    d.busybox("bb:local");

    // --runtime
    if runc {
        berth_ok(
            &d,
            &[
                "run",
                "-d",
                "--name",
                "rt",
                "--runtime",
                "runc",
                "bb:local",
                "sleep",
                "300",
            ],
        );
        assert_eq!(inspect(&d, "{{.HostConfig.Runtime}}", "rt"), "runc");
        assert_eq!(inspect(&d, "{{.State.Running}}", "rt"), "true");
        d.ok(&["rm", "-f", "rt"]);
    } else {
        eprintln!("runc is not installed: --runtime runc not tried");
    }
    let err = berth_fails(&d, &["create", "--runtime", "nosuch", "bb:local", "true"]);
    assert!(err.contains("Unknown runtime specified nosuch"), "{err}");

    // --volume-driver: the driver of the -v volumes; an unknown one is the daemon's error.
    berth_ok(
        &d,
        &[
            "create",
            "--name",
            "vd",
            "--volume-driver",
            "local",
            "-v",
            "vdvol:/data",
            "bb:local",
            "true",
        ],
    );
    assert_eq!(inspect(&d, "{{.HostConfig.VolumeDriver}}", "vd"), "local");
    assert_eq!(inspect(&d, "{{.Driver}}", "vdvol"), "local");
    let err = berth_fails(
        &d,
        &[
            "create",
            // An unknown plugin is a 404, after which the docker CLI (and berth) would pull a
            // missing image: no pull, the daemon's error.
            "--pull",
            "never",
            "--volume-driver",
            "nosuch",
            "-v",
            "vdvol2:/data",
            "bb:local",
            "true",
        ],
    );
    assert!(
        err.contains(r#"error looking up volume plugin nosuch: plugin "nosuch" not found"#),
        "{err}"
    );

    // volume create --driver -o
    let dir = d.dir.join("voldir");
    std::fs::create_dir_all(&dir).unwrap();
    let device = format!("device={}", dir.display());
    berth_ok(
        &d,
        &[
            "volume",
            "create",
            "--driver",
            "local",
            "-o",
            "type=none",
            "-o",
            "o=bind",
            "-o",
            &device,
            "tv",
        ],
    );
    assert_eq!(
        inspect(
            &d,
            "{{.Driver}} {{.Options.type}} {{.Options.o}} {{.Options.device}}",
            "tv"
        ),
        format!("local none bind {}", dir.display())
    );
    let err = berth_fails(&d, &["volume", "create", "--driver", "nosuch", "nv"]);
    assert!(
        err.contains(r#"error looking up volume plugin nosuch: plugin "nosuch" not found"#),
        "{err}"
    );

    // --storage-opt: the daemon's refusal (no quota-capable snapshotter), the CLI's own check.
    let err = berth_fails(
        &d,
        &["create", "--storage-opt", "size=1G", "bb:local", "true"],
    );
    assert!(err.contains("--storage-opt is"), "{err}");
    assert!(err.contains("supported"), "{err}");
    let err = berth_fails(&d, &["create", "--storage-opt", "size", "bb:local", "true"]);
    assert!(err.contains("invalid storage option"), "{err}");
    d.ok(&["rm", "-f", "vd"]);
    d.ok(&["volume", "rm", "vdvol", "tv"]);
}

#[test]
fn links_and_rm_link() {
    if skip() {
        return;
    }
    let d = Daemon::start();
    d.busybox("bb:local");
    d.ok(&[
        "run",
        "-d",
        "--name",
        "db",
        "-e",
        "SECRET=s3",
        "--expose",
        "80",
        "bb:local",
        "sleep",
        "300",
    ]);
    let ip = d.ip_on("db", "bridge");
    berth_ok(
        &d,
        &[
            "run",
            "-d",
            "--name",
            "web",
            "--link",
            "db:database",
            "bb:local",
            "sleep",
            "300",
        ],
    );
    assert_eq!(
        inspect(&d, "{{json .HostConfig.Links}}", "web"),
        r#"["/db:/web/database"]"#
    );
    let env = d.ok(&["exec", "web", "env"]);
    for want in [
        "DATABASE_NAME=/web/database".to_string(),
        "DATABASE_ENV_SECRET=s3".to_string(),
        format!("DATABASE_PORT_80_TCP_ADDR={ip}"),
    ] {
        assert!(env.lines().any(|l| l == want), "{want} in {env}");
    }
    let hosts = d.ok(&["exec", "web", "cat", "/etc/hosts"]);
    assert!(hosts.contains(&format!("{ip}\tdatabase")), "{hosts}");

    // `NAME` alone: the alias is the name.
    berth_ok(
        &d,
        &[
            "create", "--name", "web2", "--link", "db", "bb:local", "true",
        ],
    );
    assert_eq!(
        inspect(&d, "{{json .HostConfig.Links}}", "web2"),
        r#"["/db:/web2/db"]"#
    );
    // The docker CLI's check of the syntax.
    let err = berth_fails(&d, &["create", "--link", "a:b:c", "bb:local", "true"]);
    assert!(err.contains("bad format for links: a:b:c"), "{err}");

    // `rm --link`: the link goes, both containers stay.
    berth_ok(&d, &["rm", "--link", "/web/database"]);
    assert_eq!(inspect(&d, "{{json .HostConfig.Links}}", "web"), "null");
    assert_eq!(inspect(&d, "{{.State.Running}}", "db"), "true");
    let err = berth_fails(&d, &["rm", "--link", "/web/database"]);
    assert!(err.contains("No such container: web/database"), "{err}");

    // On a user-defined network: the endpoint's link, an alias for that container.
    d.ok(&["network", "create", "lnet"]);
    d.ok(&[
        "run",
        "-d",
        "--name",
        "db2",
        "--network",
        "lnet",
        "bb:local",
        "sleep",
        "300",
    ]);
    let ip2 = d.ip_on("db2", "lnet");
    berth_ok(
        &d,
        &[
            "run",
            "-d",
            "--name",
            "web3",
            "--network",
            "lnet",
            "--link",
            "db2:dbalias",
            "bb:local",
            "sleep",
            "300",
        ],
    );
    assert_eq!(
        inspect(
            &d,
            "{{json (index .NetworkSettings.Networks \"lnet\").Links}}",
            "web3"
        ),
        r#"["db2:dbalias"]"#
    );
    let out = d.ok(&["exec", "web3", "nslookup", "dbalias"]);
    assert!(out.contains(&ip2), "{out}");
    d.ok(&["rm", "-f", "web", "web2", "web3", "db", "db2"]);
    d.ok(&["network", "rm", "lnet"]);
}

#[test]
fn mac_address() {
    if skip() {
        return;
    }
    let d = Daemon::start();
    d.busybox("bb:local");
    berth_ok(
        &d,
        &[
            "run",
            "-d",
            "--name",
            "m1",
            "--mac-address",
            "02:00:00:00:00:42",
            "bb:local",
            "sleep",
            "300",
        ],
    );
    let out = d.ok(&["exec", "m1", "cat", "/sys/class/net/eth0/address"]);
    assert_eq!(out.trim(), "02:00:00:00:00:42");
    assert_eq!(
        inspect(&d, "{{.Config.MacAddress}}", "m1"),
        "02:00:00:00:00:42"
    );
    // The docker CLI's check, before anything reaches the daemon.
    let err = berth_fails(
        &d,
        &[
            "create",
            "--name",
            "m2",
            "--mac-address",
            "zz:00",
            "bb:local",
            "true",
        ],
    );
    assert!(err.contains("zz:00 is not a valid mac address"), "{err}");
    assert!(!d.docker(&["inspect", "m2"]).status.success());
    d.ok(&["rm", "-f", "m1"]);
}

#[test]
fn ipv6_networks_and_connect() {
    if skip() {
        return;
    }
    let d = Daemon::start();
    d.busybox("bb:local");
    let (p6, p4) = prefixes();
    let subnet6 = format!("{p6}/64");
    let subnet4 = format!("{p4}0/24");
    // Gateways in another order than the subnets: each goes to the subnet holding it.
    berth_ok(
        &d,
        &[
            "network",
            "create",
            "--ipv6",
            "--subnet",
            &subnet4,
            "--subnet",
            &subnet6,
            "--gateway",
            &format!("{p6}1"),
            "--gateway",
            &format!("{p4}1"),
            "--aux-address",
            &format!("router={p4}5"),
            "v6n",
        ],
    );
    assert_eq!(inspect(&d, "{{.EnableIPv6}}", "v6n"), "true");
    let config = inspect(&d, "{{json .IPAM.Config}}", "v6n");
    for want in [
        format!(r#""Subnet":"{subnet4}","Gateway":"{p4}1""#),
        format!(r#""Subnet":"{subnet6}","Gateway":"{p6}1""#),
        format!(r#""AuxiliaryAddresses":{{"router":"{p4}5"}}"#),
    ] {
        assert!(config.contains(&want), "{want} in {config}");
    }
    let err = berth_fails(
        &d,
        &[
            "network",
            "create",
            "--subnet",
            &subnet4,
            "--aux-address",
            "x=10.255.0.1",
            "bad",
        ],
    );
    assert!(
        err.contains("no matching subnet for aux-address 10.255.0.1"),
        "{err}"
    );

    // run --ip6 --link-local-ip
    let fixed6 = format!("{p6}99");
    berth_ok(
        &d,
        &[
            "run",
            "-d",
            "--name",
            "c6",
            "--network",
            "v6n",
            "--ip6",
            &fixed6,
            "--link-local-ip",
            "169.254.7.7",
            "bb:local",
            "sleep",
            "300",
        ],
    );
    let net = inspect(&d, "{{json .NetworkSettings.Networks.v6n}}", "c6");
    for want in [
        format!(r#""GlobalIPv6Address":"{fixed6}""#),
        r#""LinkLocalIPs":["169.254.7.7"]"#.to_string(),
    ] {
        assert!(net.contains(&want), "{want} in {net}");
    }
    let addr = d.ok(&["exec", "c6", "ip", "addr", "show", "eth0"]);
    assert!(addr.contains(&format!("inet6 {fixed6}/64")), "{addr}");
    assert!(addr.contains("169.254.7.7"), "{addr}");

    // network connect --ip --ip6 --alias --link --link-local-ip --driver-opt
    d.ok(&["create", "--name", "late", "bb:local", "sleep", "300"]);
    let ip4 = format!("{p4}77");
    let ip6 = format!("{p6}77");
    berth_ok(
        &d,
        &[
            "network",
            "connect",
            "--ip",
            &ip4,
            "--ip6",
            &ip6,
            "--alias",
            "lateal",
            "--link",
            "c6:c6alias",
            "--link-local-ip",
            "169.254.8.8",
            "--driver-opt",
            "foo=bar",
            "v6n",
            "late",
        ],
    );
    let ep = inspect(&d, "{{json .NetworkSettings.Networks.v6n}}", "late");
    for want in [
        format!(r#""IPv4Address":"{ip4}""#),
        format!(r#""IPv6Address":"{ip6}""#),
        r#""LinkLocalIPs":["169.254.8.8"]"#.to_string(),
        r#""Links":["c6:c6alias"]"#.to_string(),
        r#""lateal""#.to_string(),
        r#""DriverOpts":{"foo":"bar"}"#.to_string(),
    ] {
        assert!(ep.contains(&want), "{want} in {ep}");
    }
    d.ok(&["start", "late"]);
    let addr = d.ok(&["exec", "late", "ip", "addr", "show"]);
    assert!(addr.contains(&format!("inet {ip4}/24")), "{addr}");
    assert!(addr.contains(&format!("inet6 {ip6}/64")), "{addr}");
    let out = d.ok(&["exec", "late", "nslookup", "c6alias"]);
    assert!(out.contains(&fixed6), "{out}");
    let err = berth_fails(
        &d,
        &["network", "connect", "--driver-opt", "novalue", "v6n", "c6"],
    );
    assert!(
        err.contains("invalid key value pair format in driver options"),
        "{err}"
    );
    d.ok(&["rm", "-f", "c6", "late"]);
    d.ok(&["network", "rm", "v6n"]);
}
