//! The API's answers as dockerd 20.10 fills them. The engine's records and the API models leave
//! unset fields out; dockerd always sends them (`"Entrypoint": null`, `"CapAdd": null`,
//! `"Runtime": "runc"`, an endpoint's `"Aliases": null`...), and SDKs index them without
//! checking (docker-py reads `HostConfig.LogConfig.Type`, compose reads `Config.Entrypoint`).
//! Here, once per object, the answer's JSON gets every field dockerd has, with dockerd's value
//! where Berth has nothing else to say. The fields themselves were recorded from dockerd 20.10
//! (`crates/daemon/tests/golden/`), and `api_inspect_keys.rs` compares.

pub mod network;
pub mod spec;

use serde_json::{json, Value};

/// Adds what `defaults` has and `v` lacks, object by object (an object present in both is
/// filled in turn; a value `v` has, null included, is kept).
pub fn fill(v: &mut Value, defaults: &Value) {
    let (Value::Object(have), Value::Object(want)) = (v, defaults) else {
        return;
    };
    for (k, d) in want {
        match have.get_mut(k) {
            None => {
                have.insert(k.clone(), d.clone());
            }
            Some(h) => fill(h, d),
        }
    }
}

/// A container's `Config` (inspect): dockerd's empty values.
fn container_config() -> Value {
    json!({
        "Hostname": "", "Domainname": "", "User": "",
        "AttachStdin": false, "AttachStdout": false, "AttachStderr": false,
        "Tty": false, "OpenStdin": false, "StdinOnce": false,
        "Env": null, "Cmd": null, "Image": "", "Volumes": null, "WorkingDir": "",
        "Entrypoint": null, "OnBuild": null, "Labels": {}
    })
}

/// An image's `Config` and `ContainerConfig`: as a container's, with `Labels` null.
fn image_config() -> Value {
    let mut c = container_config();
    c["Labels"] = Value::Null;
    c
}

/// A container's `HostConfig` as dockerd 20.10 stores it for `docker create IMAGE` on a cgroup v1
/// host (`MaskedPaths` and `ReadonlyPaths` are set by the caller: they depend on `Privileged`).
fn host_config(runtime: &str) -> Value {
    json!({
        "Binds": null, "ContainerIDFile": "", "LogConfig": {"Type": "json-file", "Config": {}},
        "NetworkMode": "default", "PortBindings": {},
        "RestartPolicy": {"Name": "no", "MaximumRetryCount": 0},
        "AutoRemove": false, "VolumeDriver": "", "VolumesFrom": null,
        "CapAdd": null, "CapDrop": null, "CgroupnsMode": "host",
        "Dns": [], "DnsOptions": [], "DnsSearch": [], "ExtraHosts": null, "GroupAdd": null,
        "IpcMode": "private", "Cgroup": "", "Links": null, "OomScoreAdj": 0, "PidMode": "",
        "Privileged": false, "PublishAllPorts": false, "ReadonlyRootfs": false,
        "SecurityOpt": null, "UTSMode": "", "UsernsMode": "", "ShmSize": 67108864,
        "Runtime": runtime, "ConsoleSize": [0, 0], "Isolation": "",
        "CpuShares": 0, "Memory": 0, "NanoCpus": 0, "CgroupParent": "", "BlkioWeight": 0,
        "BlkioWeightDevice": [], "BlkioDeviceReadBps": [], "BlkioDeviceWriteBps": [],
        "BlkioDeviceReadIOps": [], "BlkioDeviceWriteIOps": [],
        "CpuPeriod": 0, "CpuQuota": 0, "CpuRealtimePeriod": 0, "CpuRealtimeRuntime": 0,
        "CpusetCpus": "", "CpusetMems": "", "Devices": [], "DeviceCgroupRules": null,
        "DeviceRequests": null, "KernelMemory": 0, "KernelMemoryTCP": 0,
        "MemoryReservation": 0, "MemorySwap": 0, "MemorySwappiness": null,
        "OomKillDisable": false, "PidsLimit": null, "Ulimits": [],
        "CpuCount": 0, "CpuPercent": 0, "IOMaximumIOps": 0, "IOMaximumBandwidth": 0,
        "MaskedPaths": null, "ReadonlyPaths": null
    })
}

/// One of `NetworkSettings.Networks` (inspect, list, `system df`).
fn endpoint() -> Value {
    json!({
        "IPAMConfig": null, "Links": null, "Aliases": null, "NetworkID": "", "EndpointID": "",
        "Gateway": "", "IPAddress": "", "IPPrefixLen": 0, "IPv6Gateway": "",
        "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0, "MacAddress": "", "DriverOpts": null
    })
}

/// Fills every endpoint of `settings.Networks`.
fn fill_endpoints(settings: &mut Value) {
    if let Some(networks) = settings.get_mut("Networks").and_then(Value::as_object_mut) {
        let defaults = endpoint();
        for e in networks.values_mut() {
            fill(e, &defaults);
        }
    }
}

/// What a container's inspect needs beyond its model.
pub struct ContainerExtras<'a> {
    /// The default runtime's name (`HostConfig.Runtime` when none was asked).
    pub runtime: &'a str,
    /// The ids of its execs (null when none, as dockerd).
    pub exec_ids: Vec<String>,
    /// `GraphDriver.Data`: its rootfs's directories, `None` when it has none yet.
    pub graph_data: Option<Vec<(&'static str, String)>>,
    /// The paths masked and made read-only in it (the defaults, unless privileged).
    pub masked_paths: &'static [&'static str],
    pub readonly_paths: &'static [&'static str],
    /// API < 1.44's `Config.MacAddress` (the models have no such field): the address its
    /// first network was asked for.
    pub mac_address: Option<String>,
}

/// `GET /containers/{id}/json`: the model's JSON, completed, with the fields of API < 1.44
/// the models (1.44+) dropped.
pub fn container_inspect(
    model: &berth_api::models::ContainerInspectResponse,
    extras: ContainerExtras<'_>,
) -> Value {
    let mut v = serde_json::to_value(model).unwrap_or_default();
    legacy_network_fields(&mut v);
    if let Some(mac) = extras.mac_address {
        v["Config"]["MacAddress"] = json!(mac);
    }
    let privileged = v["HostConfig"]["Privileged"].as_bool() == Some(true);
    let mut host = host_config(extras.runtime);
    if !privileged {
        host["MaskedPaths"] = json!(extras.masked_paths);
        host["ReadonlyPaths"] = json!(extras.readonly_paths);
    }
    let exec_ids = match extras.exec_ids.is_empty() {
        true => Value::Null,
        false => json!(extras.exec_ids),
    };
    let data = extras.graph_data.map(|d| {
        Value::Object(
            d.into_iter()
                .map(|(k, p)| (k.to_string(), Value::String(p)))
                .collect(),
        )
    });
    fill(
        &mut v,
        &json!({
            "ExecIDs": exec_ids,
            "Config": container_config(),
            "HostConfig": host,
            "GraphDriver": {"Data": data.unwrap_or(Value::Null)},
        }),
    );
    if let Some(data) = v.pointer_mut("/GraphDriver/Data").filter(|d| d.is_null()) {
        *data = json!({});
    }
    if let Some(settings) = v.get_mut("NetworkSettings") {
        fill_endpoints(settings);
    }
    v
}

/// The inspect body with `NetworkSettings`' top-level fields that API versions before 1.44
/// have (the models follow 1.44+, which dropped them): those of the default `bridge`
/// network's endpoint, empty otherwise, as dockerd fills them.
fn legacy_network_fields(v: &mut Value) {
    let Some(settings) = v.get_mut("NetworkSettings").and_then(|s| s.as_object_mut()) else {
        return;
    };
    let bridge = settings
        .get("Networks")
        .and_then(|n| n.get("bridge"))
        .cloned()
        .unwrap_or_default();
    let text = |k: &str| json!(bridge.get(k).and_then(|x| x.as_str()).unwrap_or_default());
    let int = |k: &str| json!(bridge.get(k).and_then(|x| x.as_i64()).unwrap_or_default());
    for (k, value) in [
        ("Bridge", json!("")),
        ("HairpinMode", json!(false)),
        ("LinkLocalIPv6Address", json!("")),
        ("LinkLocalIPv6PrefixLen", json!(0)),
        ("SecondaryIPAddresses", json!(null)),
        ("SecondaryIPv6Addresses", json!(null)),
        ("EndpointID", text("EndpointID")),
        ("Gateway", text("Gateway")),
        ("GlobalIPv6Address", text("GlobalIPv6Address")),
        ("GlobalIPv6PrefixLen", int("GlobalIPv6PrefixLen")),
        ("IPAddress", text("IPAddress")),
        ("IPPrefixLen", int("IPPrefixLen")),
        ("IPv6Gateway", text("IPv6Gateway")),
        ("MacAddress", text("MacAddress")),
    ] {
        settings.entry(k).or_insert(value);
    }
}

/// One entry of `GET /containers/json` (and of `system df`'s containers).
pub fn container_summary(v: &mut Value) {
    if let Some(settings) = v.get_mut("NetworkSettings") {
        fill_endpoints(settings);
    }
}

/// What an image's inspect needs beyond its model.
pub struct ImageExtras {
    /// The image config's `parent`, `container`, `container_config` and `docker_version` (set by
    /// commits, as dockerd's V1 image fields).
    pub parent: String,
    pub container: String,
    pub container_config: Value,
    pub docker_version: String,
    /// `GraphDriver.Data` of its top layer's snapshot.
    pub graph_data: Vec<(&'static str, String)>,
    pub driver: String,
    /// When a name last came to point at it (`0001-01-01T00:00:00Z` for never).
    pub last_tag_time: String,
}

/// `GET /images/{name}/json`: the model's JSON, completed.
pub fn image_inspect(mut v: Value, extras: ImageExtras) -> Value {
    let size = v["Size"].clone();
    let mut container_config = extras.container_config;
    if !container_config.is_object() {
        container_config = image_config();
    }
    fill(&mut container_config, &image_config());
    let data: serde_json::Map<String, Value> = extras
        .graph_data
        .into_iter()
        .map(|(k, p)| (k.to_string(), Value::String(p)))
        .collect();
    fill(
        &mut v,
        &json!({
            "Parent": extras.parent,
            "Container": extras.container,
            "ContainerConfig": container_config,
            "DockerVersion": extras.docker_version,
            "Config": image_config(),
            "VirtualSize": size,
            "GraphDriver": {"Data": data, "Name": extras.driver},
            "Metadata": {"LastTagTime": extras.last_tag_time},
        }),
    );
    v
}

/// `GET /exec/{id}/json`: dockerd sends `ExitCode: null` while the exec runs.
pub fn exec_inspect(v: &mut Value) {
    fill(v, &json!({ "ExitCode": null }));
}

/// One entry of `GET /images/json` (and of `system df`'s images): API 1.43 still has
/// `VirtualSize`, the same as `Size`.
pub fn image_summary(v: &mut Value) {
    if let Some(size) = v.get("Size").cloned() {
        fill(v, &json!({ "VirtualSize": size }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fill_adds_what_is_missing_and_keeps_what_is_there() {
        let mut v = json!({"a": 1, "b": {"c": null}, "n": null});
        fill(
            &mut v,
            &json!({"a": 2, "b": {"c": 3, "d": 4}, "e": [1], "n": {"x": 1}}),
        );
        assert_eq!(
            v,
            json!({"a": 1, "b": {"c": null, "d": 4}, "e": [1], "n": null})
        );
    }

    #[test]
    fn privileged_containers_mask_nothing() {
        let extras = |exec_ids| ContainerExtras {
            runtime: "berth",
            exec_ids,
            graph_data: None,
            masked_paths: &["/proc/kcore"],
            readonly_paths: &["/proc/sys"],
            mac_address: None,
        };
        let model = |v: Value| serde_json::from_value(v).unwrap();
        let v = container_inspect(
            &model(json!({"HostConfig": {"Privileged": true}})),
            extras(vec![]),
        );
        assert_eq!(v["HostConfig"]["MaskedPaths"], Value::Null);
        assert_eq!(v["ExecIDs"], Value::Null);
        assert_eq!(v["GraphDriver"]["Data"], json!({}));
        let v = container_inspect(&model(json!({})), extras(vec!["e1".into()]));
        assert_eq!(v["HostConfig"]["MaskedPaths"], json!(["/proc/kcore"]));
        assert_eq!(v["HostConfig"]["Runtime"], "berth");
        assert_eq!(v["ExecIDs"], json!(["e1"]));
    }
}
