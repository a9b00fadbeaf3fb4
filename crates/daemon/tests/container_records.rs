//! Container records across berthd's restarts: records written by an older Berth (version 1,
//! the API's models on disk) load and inspect as they did; a record of a newer Berth is not
//! loaded, is left as it is, and keeps no other container from loading; records written now
//! (version 2) keep every field a client set through a restart.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions unwrap too

mod common;

use std::path::{Path, PathBuf};

use common::{skip, Daemon};
use serde_json::{json, Value};

const NAMES: [&str; 4] = ["rich", "plain", "emptycmd", "api"];
const NEWER_ID: &str = "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff";

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../engine/tests/fixtures/records")
}

fn read_json(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// `docker inspect NAME` as JSON.
fn inspect(d: &Daemon, name: &str) -> Value {
    let v: Value = serde_json::from_str(&d.ok(&["inspect", name])).unwrap();
    v[0].clone()
}

/// The data root's records: the v1 fixtures, and a record of a newer Berth.
fn place_records(dir: &Path) -> Vec<u8> {
    let containers = dir.join("data/containers");
    for name in NAMES {
        let record = read_json(&fixtures().join(format!("v1-{name}.json")));
        let id = record["id"].as_str().unwrap();
        std::fs::create_dir_all(containers.join(id)).unwrap();
        std::fs::write(
            containers.join(id).join("config.json"),
            serde_json::to_vec(&record).unwrap(),
        )
        .unwrap();
    }
    let mut newer = read_json(&fixtures().join("v1-plain.json"));
    newer["record_version"] = json!(99);
    newer["id"] = json!(NEWER_ID);
    newer["name"] = json!("from-the-future");
    let newer = serde_json::to_vec(&newer).unwrap();
    std::fs::create_dir_all(containers.join(NEWER_ID)).unwrap();
    std::fs::write(containers.join(NEWER_ID).join("config.json"), &newer).unwrap();
    newer
}

#[test]
fn old_records_load_and_newer_ones_are_left_alone() {
    if skip() {
        return;
    }
    let mut newer = Vec::new();
    let mut d = Daemon::start_with(|dir| newer = place_records(dir));
    let newer_path = d
        .data_root
        .join("containers")
        .join(NEWER_ID)
        .join("config.json");
    let before = read_json(&fixtures().join("v1-inspect.json"));
    let check = |d: &Daemon, name: &str, shown: &str| {
        let v = inspect(d, shown);
        assert_eq!(v["Config"], before[name]["Config"], "{name}: Config");
        assert_eq!(
            v["HostConfig"], before[name]["HostConfig"],
            "{name}: HostConfig"
        );
    };
    for name in NAMES {
        check(&d, name, name);
    }
    let listed = d.ok(&["ps", "-a", "--format", "{{.Names}}"]);
    let mut listed: Vec<&str> = listed.lines().collect();
    listed.sort();
    assert_eq!(listed, ["api", "emptycmd", "plain", "rich"]);
    assert!(!d.docker(&["inspect", "from-the-future"]).status.success());
    assert!(
        d.log().contains("written by a newer Berth"),
        "the refusal is logged: {}",
        d.log()
    );
    assert_eq!(std::fs::read(&newer_path).unwrap(), newer);

    // A change writes the record in this version's form; it reads back the same.
    d.ok(&["rename", "plain", "plain2"]);
    let plain = read_json(&fixtures().join("v1-plain.json"));
    let written = read_json(
        &d.data_root
            .join("containers")
            .join(plain["id"].as_str().unwrap())
            .join("config.json"),
    );
    assert_eq!(written["record_version"], json!(2));
    d.stop();
    d.spawn();
    check(&d, "plain", "plain2");
    check(&d, "rich", "rich");
    assert_eq!(
        std::fs::read(&newer_path).unwrap(),
        newer,
        "still untouched"
    );
    // Not Docker's to remove: it stays for the Berth that wrote it.
    drop(d);
}

#[test]
fn what_a_client_set_survives_a_restart() {
    if skip() {
        return;
    }
    let mut d = Daemon::start();
    d.busybox("bb");
    d.ok(&[
        "create",
        "--name",
        "rich",
        "--cpu-shares",
        "512",
        "--oom-score-adj",
        "100",
        "--memory",
        "64m",
        "--pids-limit",
        "50",
        "--ulimit",
        "nofile=1024:2048",
        "--restart",
        "on-failure:3",
        "--health-cmd",
        "true",
        "--health-interval",
        "5s",
        "-p",
        "127.0.0.1::80",
        "--expose",
        "9000",
        "--tmpfs",
        "/run:size=2m",
        "--mount",
        "type=tmpfs,target=/tm,tmpfs-size=1m",
        "--cap-add",
        "NET_ADMIN",
        "--dns",
        "1.1.1.1",
        "--add-host",
        "h1:1.2.3.4",
        "--sysctl",
        "net.ipv4.ip_forward=1",
        "--label",
        "l=v",
        "--stop-signal",
        "SIGINT",
        "--device",
        "/dev/null:/dev/mynull",
        "bb",
        "sleep",
        "60",
    ]);
    let before = inspect(&d, "rich");
    assert_eq!(before["HostConfig"]["CpuShares"], json!(512));
    assert_eq!(before["HostConfig"]["OomScoreAdj"], json!(100));
    d.stop();
    d.spawn();
    let after = inspect(&d, "rich");
    assert_eq!(after["Config"], before["Config"]);
    assert_eq!(after["HostConfig"], before["HostConfig"]);
    d.ok(&["start", "rich"]);
    let running = inspect(&d, "rich");
    assert_eq!(running["HostConfig"], before["HostConfig"]);
    assert_eq!(running["State"]["Running"], json!(true));
    d.ok(&["rm", "-f", "rich"]);
}
