use super::*;
use serde_json::json;

#[test]
fn capabilities_add_and_drop_as_docker() {
    let mut hc = HostSpec::default();
    assert_eq!(capabilities(&hc).len(), DEFAULT_CAPS.len());
    hc.cap_add = Some(vec!["net_admin".into()]);
    hc.cap_drop = Some(vec!["CAP_CHOWN".into(), "kill".into()]);
    let caps = capabilities(&hc);
    assert!(caps.contains(&"CAP_NET_ADMIN".to_string()));
    assert!(!caps.contains(&"CAP_CHOWN".to_string()));
    assert!(!caps.contains(&"CAP_KILL".to_string()));
    hc.cap_drop = Some(vec!["ALL".into()]);
    assert_eq!(capabilities(&hc), vec!["CAP_NET_ADMIN".to_string()]);
}

#[test]
fn the_largest_limits_do_not_overflow() {
    let hc = HostSpec {
        memory: Some(i64::MAX),
        nano_cpus: Some(i64::MAX),
        ..HostSpec::default()
    };
    let r = serde_json::to_value(resources(&hc)).unwrap();
    assert_eq!(r["memory"]["swap"], json!(i64::MAX));
    assert_eq!(r["cpu"]["quota"], json!(i64::MAX / 10_000));
    let hc = HostSpec {
        nano_cpus: Some(1_500_000_000),
        ..HostSpec::default()
    };
    let r = serde_json::to_value(resources(&hc)).unwrap();
    assert_eq!(r["cpu"]["quota"], json!(150_000));
}

#[test]
fn environment_layers_and_defaults() {
    let env = environment(
        &["PATH=/bin".into(), "A=image".into()],
        &["A=ctr".into(), "B=2".into()],
        "h",
        true,
    );
    assert_eq!(
        env,
        vec!["PATH=/bin", "HOSTNAME=h", "A=ctr", "B=2", "TERM=xterm"]
    );
    let env = environment(&[], &[], "h", false);
    assert_eq!(env, vec![DEFAULT_PATH.to_string(), "HOSTNAME=h".into()]);
}

fn container(hc: HostSpec) -> Container {
    Container {
        id: "0123456789ab".repeat(5) + "0123",
        name: "c".into(),
        created: String::new(),
        image_id: String::new(),
        image_manifest: String::new(),
        image_top: None,
        path: "sleep".into(),
        args: vec!["100".into()],
        config: Default::default(),
        host_config: hc,
        state: Default::default(),
        restart_count: 0,
        restart_delay_ms: 0,
        manually_stopped: false,
        log_path: Default::default(),
        networks: Default::default(),
        anonymous_volumes: Vec::new(),
    }
}

fn spec(hc: HostSpec, init: Option<&Path>) -> Value {
    spec_of(container(hc), init, &Default::default())
}

fn spec_of(c: Container, init: Option<&Path>, sharing: &crate::sharing::Sharing) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("f");
    std::fs::write(&f, "").unwrap();
    let paths = Paths {
        rootfs: dir.path(),
        hostname: &f,
        hosts: &f,
        resolv_conf: &f,
        netns: None,
        volumes: dir.path(),
        subpaths: dir.path(),
        plugin_volumes: &Default::default(),
        cgroups_path: "/berth/x".into(),
        sharing,
        init,
        seccomp: &Default::default(),
        userns: None,
    };
    serde_json::to_value(build(&c, &json!({}), &paths).unwrap()).unwrap()
}

#[test]
fn init_is_bound_read_only_and_runs_the_command() {
    let dir = tempfile::tempdir().unwrap();
    let init = dir.path().join("berth-init");
    std::fs::write(&init, "").unwrap();
    let s = spec(HostSpec::default(), Some(&init));
    assert_eq!(
        s["process"]["args"],
        json!(["/dev/init", "--", "sleep", "100"])
    );
    let m = s["mounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["destination"] == "/dev/init")
        .unwrap();
    assert_eq!(m["source"], json!(init));
    assert!(m["options"].as_array().unwrap().contains(&json!("ro")));
    let s = spec(HostSpec::default(), None);
    assert_eq!(s["process"]["args"], json!(["sleep", "100"]));
    // A missing binary is an error that says which.
    let missing = dir.path().join("nope");
    let c = container(HostSpec::default());
    let paths = Paths {
        rootfs: dir.path(),
        hostname: &init,
        hosts: &init,
        resolv_conf: &init,
        netns: None,
        volumes: dir.path(),
        subpaths: dir.path(),
        plugin_volumes: &Default::default(),
        cgroups_path: String::new(),
        sharing: &Default::default(),
        init: Some(&missing),
        seccomp: &Default::default(),
        userns: None,
    };
    let err = build(&c, &json!({}), &paths).unwrap_err().to_string();
    assert!(err.contains("nope"), "{err}");
}

#[test]
fn privileged_gets_the_host_devices_and_an_open_device_cgroup() {
    let s = spec(HostSpec::default(), None);
    assert_eq!(
        s["linux"]["resources"]["devices"][0],
        json!({"allow": false, "access": "rwm"})
    );
    assert!(s["linux"]["devices"].is_null());
    assert!(s["linux"]["maskedPaths"].is_array());
    let hc = HostSpec {
        privileged: Some(true),
        ..Default::default()
    };
    let s = spec(hc, None);
    assert_eq!(
        s["linux"]["resources"]["devices"],
        json!([{"allow": true, "access": "rwm"}])
    );
    let devices = s["linux"]["devices"].as_array().unwrap();
    let null = devices.iter().find(|d| d["path"] == "/dev/null").unwrap();
    assert_eq!(
        (&null["type"], &null["major"], &null["minor"]),
        (&json!("c"), &json!(1), &json!(3))
    );
    assert!(devices.iter().all(|d| {
        let p = d["path"].as_str().unwrap();
        p != "/dev/console" && !p.starts_with("/dev/pts/") && !p.starts_with("/dev/shm/")
    }));
    assert!(s["linux"]["maskedPaths"].is_null());
    assert!(s["linux"]["readonlyPaths"].is_null());
}

#[test]
fn all_caps_are_those_of_the_bounding_set() {
    let all = all_caps();
    assert!(all.contains(&"CAP_CHOWN".to_string()));
    assert!(all.len() <= ALL_CAPS.len());
    let hc = HostSpec {
        privileged: Some(true),
        ..Default::default()
    };
    assert_eq!(capabilities(&hc), all);
}

#[test]
fn memory_swap_defaults_to_twice_the_limit() {
    let hc = HostSpec {
        memory: Some(64 << 20),
        nano_cpus: Some(1_500_000_000),
        pids_limit: Some(10),
        ..Default::default()
    };
    let r = serde_json::to_value(resources(&hc)).unwrap();
    assert_eq!(r["memory"]["swap"], 128 << 20);
    assert_eq!(r["cpu"]["quota"], 150_000);
    assert_eq!(r["pids"]["limit"], 10);
}

#[test]
fn etc_files_are_read_only_with_a_read_only_root() {
    let etc_options = |hc: HostSpec| -> Vec<bool> {
        let s = spec(hc, None);
        ["/etc/hosts", "/etc/hostname", "/etc/resolv.conf"]
            .iter()
            .map(|dest| {
                let m = s["mounts"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|m| m["destination"] == *dest)
                    .unwrap();
                m["options"].as_array().unwrap().contains(&json!("ro"))
            })
            .collect()
    };
    assert_eq!(etc_options(HostSpec::default()), [false; 3]);
    let hc = HostSpec {
        readonly_rootfs: Some(true),
        ..Default::default()
    };
    assert_eq!(etc_options(hc), [true; 3]);
}

#[test]
fn a_command_that_is_the_init_runs_without_a_second_init() {
    let dir = tempfile::tempdir().unwrap();
    let init = dir.path().join("berth-init");
    std::fs::write(&init, "").unwrap();
    let mut c = container(HostSpec::default());
    c.path = INIT_PATH.into();
    c.args = vec!["--pause".into()];
    let s = spec_of(c, Some(&init), &Default::default());
    assert_eq!(s["process"]["args"], json!(["/dev/init", "--pause"]));
}

#[test]
fn shared_namespaces_and_shm() {
    use crate::sharing::{Ns, Sharing, Shm};
    let kinds = |s: &Value| -> Vec<(String, Option<String>)> {
        s["linux"]["namespaces"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| {
                (
                    n["type"].as_str().unwrap().to_string(),
                    n["path"].as_str().map(str::to_string),
                )
            })
            .collect()
    };
    let shm = |s: &Value| {
        s["mounts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["destination"] == "/dev/shm")
            .cloned()
    };
    let private = spec(HostSpec::default(), None);
    assert_eq!(
        kinds(&private),
        [("pid", None), ("ipc", None), ("uts", None), ("mount", None)]
            .map(|(t, p): (&str, Option<String>)| (t.to_string(), p))
    );
    assert_eq!(shm(&private).unwrap()["type"], "tmpfs");
    assert_eq!(private["hostname"], "0123456789ab");
    let shared = Sharing {
        ipc: Ns::Join("/proc/7/ns/ipc".into()),
        pid: Ns::Host,
        uts: Ns::Join("/proc/7/ns/uts".into()),
        shm: Shm::Bind("/run/x/shm".into()),
    };
    let s = spec_of(container(HostSpec::default()), None, &shared);
    assert_eq!(
        kinds(&s),
        vec![
            ("ipc".to_string(), Some("/proc/7/ns/ipc".to_string())),
            ("uts".to_string(), Some("/proc/7/ns/uts".to_string())),
            ("mount".to_string(), None)
        ]
    );
    assert_eq!(shm(&s).unwrap()["source"], "/run/x/shm");
    assert_eq!(shm(&s).unwrap()["type"], "bind");
    assert!(s.get("hostname").is_none_or(Value::is_null), "{s}");
    let none = Sharing {
        shm: Shm::None,
        ..Default::default()
    };
    assert!(shm(&spec_of(container(HostSpec::default()), None, &none)).is_none());
}
