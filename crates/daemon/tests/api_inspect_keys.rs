//! Inspect and list answers carry every field dockerd's do. `golden/scenario.txt` makes the same
//! objects here as it made on a dockerd 20.10 (`golden/record.py`, which recorded the key paths
//! of dockerd's answers in `golden/*.keys`); the key paths of berthd's answers must be the
//! same, but for the fields the API gained after dockerd 20.10's 1.41 (berthd speaks 1.43 with
//! newer models) listed in [`NEWER`].

#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions unwrap too

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{skip, text, Daemon};
use serde_json::Value;

/// Key paths berthd has and dockerd 20.10 has not: fields of later API versions, which the
/// clients of 1.41 ignore.
const NEWER: &[&str] = &[
    // 1.44+: an endpoint's gateway priority, 1.47+: a network's IPv4 switch.
    "NetworkSettings.Networks.*.GwPriority",
    "[].NetworkSettings.Networks.*.GwPriority",
    "Containers[].NetworkSettings.Networks.*.GwPriority",
    "EnableIPv4",
    "[].EnableIPv4",
    // dockerd 23+ shows the gateway it chose for a subnet given without one.
    "IPAM.Config[].Gateway",
    // dockerd sends `SizeRw` in `system df` only when it is not zero.
    "Containers[].SizeRw",
];

/// Key paths of a JSON value, as `record.py` writes them: `A.B` for fields, `[]` for list
/// elements, `*` for map keys that are not field names (labels, networks, ports).
fn paths(v: &Value, prefix: &str, out: &mut BTreeSet<String>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                let field = k.chars().next().is_some_and(|c| c.is_ascii_uppercase())
                    && k.chars().all(|c| c.is_ascii_alphanumeric());
                let name = if field { k.as_str() } else { "*" };
                let p = if prefix.is_empty() {
                    name.to_string()
                } else {
                    format!("{prefix}.{name}")
                };
                out.insert(p.clone());
                paths(x, &p, out);
            }
        }
        Value::Array(a) => {
            for x in a {
                paths(x, &format!("{prefix}[]"), out);
            }
        }
        _ => {}
    }
}

fn get(d: &Daemon, path: &str) -> Value {
    let socket = d.socket.display().to_string();
    let out = Command::new("curl")
        .args(["-sf", "--max-time", "20", "--unix-socket", &socket])
        .arg(format!("http://d/v1.43{path}"))
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "GET {path}: {stdout}{stderr}");
    serde_json::from_str(&stdout).unwrap()
}

fn golden() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/golden"))
}

/// The scenario's lines, split on spaces.
fn scenario() -> Vec<Vec<String>> {
    std::fs::read_to_string(golden().join("scenario.txt"))
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| l.split_whitespace().map(str::to_string).collect())
        .collect()
}

/// `path` with each `{exec:C}` replaced by the first of container C's `ExecIDs`.
fn with_exec_ids(d: &Daemon, path: &str) -> String {
    let Some((before, rest)) = path.split_once("{exec:") else {
        return path.to_string();
    };
    let (container, after) = rest.split_once('}').unwrap();
    let ids = get(d, &format!("/containers/{container}/json"))["ExecIDs"].clone();
    let id = ids[0]
        .as_str()
        .unwrap_or_else(|| panic!("no exec in {container}: {ids}"));
    format!("{before}{id}{}", with_exec_ids(d, after))
}

#[test]
fn inspect_and_list_answers_have_every_field_dockerd_has() {
    if skip() {
        return;
    }
    let d = Daemon::start();
    // As record.py's dockerd had it: `docker import -c 'CMD ["sh"]'`.
    d.busybox_with_changes("busybox", &[r#"CMD ["sh"]"#]);
    let lines = scenario();
    for l in lines.iter().filter(|l| l[0] == "docker") {
        let args: Vec<&str> = l[1..].iter().map(String::as_str).collect();
        d.ok(&args);
    }
    // The health check's first result (dockerd's was recorded after its first runs too).
    let deadline = Instant::now() + Duration::from_secs(30);
    while get(&d, "/containers/checked/json")["State"]["Health"]["Log"]
        .as_array()
        .is_none_or(|l| l.is_empty())
    {
        assert!(Instant::now() < deadline, "no health check result in 30 s");
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut report = String::new();
    for l in lines.iter().filter(|l| l[0] == "get") {
        let name = &l[1];
        let path = &with_exec_ids(&d, &l[2]);
        let want: BTreeSet<String> = std::fs::read_to_string(golden().join(format!("{name}.keys")))
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect();
        let mut have = BTreeSet::new();
        paths(&get(&d, path), "", &mut have);
        let missing: Vec<&String> = want.difference(&have).collect();
        let extra: Vec<&String> = have
            .difference(&want)
            .filter(|p| !NEWER.contains(&p.as_str()))
            .collect();
        if !missing.is_empty() || !extra.is_empty() {
            report += &format!("{name} ({path}):\n  missing {missing:?}\n  extra {extra:?}\n");
        }
    }
    assert!(report.is_empty(), "answers unlike dockerd's:\n{report}");
}
