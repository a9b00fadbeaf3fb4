//! The records of the fixtures (`crates/engine/tests/fixtures/records/`): version 1 records
//! written by Berth before the engine had its own types (`docker create` with most flags set,
//! a raw API create with `Mounts` options, `Cmd: []`...), and the `Config` and `HostConfig`
//! that `docker inspect` showed for them then.

use serde_json::{json, Value};

use super::*;
use crate::container::store::Store;

const NAMES: [&str; 4] = ["rich", "plain", "emptycmd", "api"];

fn fixture(name: &str) -> Vec<u8> {
    let path = format!(
        "{}/tests/fixtures/records/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn v1(name: &str) -> Vec<u8> {
    fixture(&format!("v1-{name}.json"))
}

/// Inspect's `Config` and `HostConfig` of `c`, as the views make them and the wire fills them.
fn inspect_parts(c: &Container) -> (Value, Value) {
    let mut hc = crate::wire::spec::host_model(&c.host_config);
    hc.links = None;
    let model = berth_api::models::ContainerInspectResponse {
        config: Some(crate::wire::spec::config_model(&c.config)),
        host_config: Some(hc),
        ..Default::default()
    };
    let v = crate::wire::container_inspect(
        &model,
        crate::wire::ContainerExtras {
            runtime: crate::DEFAULT_RUNTIME,
            exec_ids: Vec::new(),
            graph_data: None,
            masked_paths: crate::spec::MASKED_PATHS,
            readonly_paths: crate::spec::READONLY_PATHS,
            mac_address: None,
        },
    );
    (v["Config"].clone(), v["HostConfig"].clone())
}

#[test]
fn v1_records_load_and_inspect_as_before() {
    let before: Value = serde_json::from_slice(&fixture("v1-inspect.json")).unwrap();
    for name in NAMES {
        let c = decode(&v1(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(c.name, name);
        let (config, host) = inspect_parts(&c);
        assert_eq!(config, before[name]["Config"], "{name}: Config");
        assert_eq!(host, before[name]["HostConfig"], "{name}: HostConfig");
    }
    let rich = decode(&v1("rich")).unwrap();
    assert_eq!(rich.host_config.cpu_shares, Some(512));
    assert_eq!(rich.host_config.oom_score_adj, Some(100));
    assert_eq!(
        rich.host_config.restart_policy.and_then(|p| p.name),
        Some(crate::container::spec::RestartPolicyName::OnFailure)
    );
    let api = decode(&v1("api")).unwrap();
    assert_eq!(api.config.cmd, Some(Vec::new()), "Cmd: [] stays []");
    assert_eq!(
        api.host_config.cgroupns_mode,
        Some(crate::container::spec::CgroupnsMode::Private)
    );
    let plain = decode(&v1("plain")).unwrap();
    assert_eq!(plain.config.entrypoint, None, "Entrypoint: null stays null");
}

#[test]
fn a_v2_record_keeps_every_field() {
    for name in NAMES {
        let c = decode(&v1(name)).unwrap();
        let bytes = encode(&c).unwrap();
        let written: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(written["record_version"], json!(RECORD_VERSION));
        let again = decode(&bytes).unwrap();
        assert_eq!(again.config, c.config, "{name}");
        assert_eq!(again.host_config, c.host_config, "{name}");
        let rewritten: Value = serde_json::from_slice(&encode(&again).unwrap()).unwrap();
        assert_eq!(rewritten, written, "{name}");
        assert_eq!(inspect_parts(&again), inspect_parts(&c), "{name}");
    }
}

#[test]
fn records_of_a_newer_berth_are_refused_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let put = |id: &str, bytes: &[u8]| {
        std::fs::create_dir_all(dir.path().join(id)).unwrap();
        std::fs::write(dir.path().join(id).join("config.json"), bytes).unwrap();
    };
    let old = decode(&v1("rich")).unwrap();
    put(&old.id, &v1("rich"));
    let mut current = decode(&v1("plain")).unwrap();
    current.name = "current".into();
    put(&current.id, &encode(&current).unwrap());
    let mut newer: Value = serde_json::from_slice(&encode(&current).unwrap()).unwrap();
    newer["record_version"] = json!(RECORD_VERSION + 1);
    newer["id"] = json!("f".repeat(64));
    newer["name"] = json!("newer");
    newer["something_new"] = json!({"a": 1});
    let newer = serde_json::to_vec(&newer).unwrap();
    put(&"f".repeat(64), &newer);
    assert!(matches!(
        decode(&newer),
        Err(RecordError::TooNew { found }) if found == RECORD_VERSION + 1
    ));
    assert!(matches!(
        decode(br#"{"record_version": "2"}"#),
        Err(RecordError::BadVersion(_))
    ));

    let store = Store::open(dir.path()).unwrap();
    let mut names: Vec<String> = store.all().into_iter().map(|c| c.name.clone()).collect();
    names.sort();
    assert_eq!(names, ["current", "rich"]);
    assert!(store.get("newer").is_err());
    let path = dir.path().join("f".repeat(64)).join("config.json");
    assert_eq!(std::fs::read(&path).unwrap(), newer, "left untouched");

    // The v1 record becomes a v2 one at its next change, with nothing lost.
    let updated = store.update(&old.id, |c| c.restart_count = 1).unwrap();
    let on_disk: Value = serde_json::from_slice(
        &std::fs::read(dir.path().join(&old.id).join("config.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(on_disk["record_version"], json!(RECORD_VERSION));
    let reopened = Store::open(dir.path()).unwrap().get(&old.id).unwrap();
    assert_eq!(reopened.host_config, updated.host_config);
    assert_eq!(reopened.config, old.config);
    assert_eq!(reopened.restart_count, 1);
    assert_eq!(std::fs::read(&path).unwrap(), newer, "still untouched");
}

/// [`v1_to_v2`] reads a version 1 record as the API's models (which wrote it) read it, made
/// the engine's by the conversion of create bodies.
#[test]
fn v1_to_v2_agrees_with_the_models_that_wrote_v1() {
    use crate::container::spec::{ContainerSpec, HostSpec};
    use crate::wire::spec::Bridge;
    use berth_api::models as api;
    for name in NAMES {
        let raw: Value = serde_json::from_slice(&v1(name)).unwrap();
        let config: api::ContainerConfig = serde_json::from_value(raw["config"].clone()).unwrap();
        let host: api::HostConfig = serde_json::from_value(raw["host_config"].clone()).unwrap();
        let c = decode(&v1(name)).unwrap();
        assert_eq!(c.config, Bridge::<ContainerSpec>::bridge(config), "{name}");
        assert_eq!(c.host_config, Bridge::<HostSpec>::bridge(host), "{name}");
    }
}
