//! The one place a container's spec meets the API's models, both ways: a create body's (or an
//! update's, a commit's, a build step's) `Config` and `HostConfig` become the engine's
//! [`ContainerSpec`] and [`HostSpec`] here, and inspect's `Config` and `HostConfig` are made
//! from them here (dockerd's defaults are then filled by [`super::container_inspect`]).
//!
//! Each type pair is listed once, field by field, by [`bridge!`], which writes both directions:
//! a field of one side missing on the other fails to compile, so nothing the user asked is lost
//! on the way in or out.

use std::collections::HashMap;

use berth_api::models as api;

use crate::container::spec::*;

/// A value of one side made into the other's.
pub trait Bridge<T> {
    fn bridge(self) -> T;
}

macro_rules! same {
    ($($t:ty),*) => {$(
        impl Bridge<$t> for $t {
            fn bridge(self) -> $t {
                self
            }
        }
    )*};
}
same!(String, bool, i64, u16, usize);

impl<A: Bridge<B>, B> Bridge<Option<B>> for Option<A> {
    fn bridge(self) -> Option<B> {
        self.map(Bridge::bridge)
    }
}

impl<A: Bridge<B>, B> Bridge<Vec<B>> for Vec<A> {
    fn bridge(self) -> Vec<B> {
        self.into_iter().map(Bridge::bridge).collect()
    }
}

impl<A: Bridge<B>, B> Bridge<HashMap<String, B>> for HashMap<String, A> {
    fn bridge(self) -> HashMap<String, B> {
        self.into_iter().map(|(k, v)| (k, v.bridge())).collect()
    }
}

/// Both directions between a model of the API and a type of the engine with the same fields;
/// the `sets` are the API's maps of empty objects (`ExposedPorts`, `Volumes`), whose keys the
/// engine keeps sorted (the models read them in no particular order).
macro_rules! bridge {
    ($api:ident <=> $own:ident { $($f:ident),* $(,)? } $(sets { $($s:ident),* })?) => {
        impl Bridge<$own> for api::$api {
            fn bridge(self) -> $own {
                $own { $($f: self.$f.bridge(),)* $($($s: sorted(self.$s),)*)? }
            }
        }
        impl Bridge<api::$api> for $own {
            fn bridge(self) -> api::$api {
                api::$api { $($f: self.$f.bridge(),)* $($($s: self.$s,)*)? }
            }
        }
    };
}

/// The keys of a set, sorted and once each.
fn sorted(keys: Option<Vec<String>>) -> Option<Vec<String>> {
    keys.map(|mut k| {
        k.sort();
        k.dedup();
        k
    })
}

/// Both directions between an enum of the API and one of the engine, variant by variant.
macro_rules! bridge_enum {
    ($api:ident <=> $own:ident { $($a:ident = $o:ident),* $(,)? }) => {
        impl Bridge<$own> for api::$api {
            fn bridge(self) -> $own {
                match self { $(api::$api::$a => $own::$o),* }
            }
        }
        impl Bridge<api::$api> for $own {
            fn bridge(self) -> api::$api {
                match self { $($own::$o => api::$api::$a),* }
            }
        }
    };
}

bridge!(ContainerConfig <=> ContainerSpec {
    hostname, domainname, user, attach_stdin, attach_stdout, attach_stderr, tty, open_stdin,
    stdin_once, env, cmd, healthcheck, args_escaped, image, working_dir, entrypoint,
    network_disabled, on_build, labels, stop_signal, stop_timeout, shell,
} sets { exposed_ports, volumes });

bridge!(HostConfig <=> HostSpec {
    cpu_shares, memory, cgroup_parent, blkio_weight, blkio_weight_device, blkio_device_read_bps,
    blkio_device_write_bps, blkio_device_read_iops, blkio_device_write_iops, cpu_period,
    cpu_quota, cpu_realtime_period, cpu_realtime_runtime, cpuset_cpus, cpuset_mems, devices,
    device_cgroup_rules, device_requests, memory_reservation, memory_swap, memory_swappiness,
    nano_cpus, oom_kill_disable, init, pids_limit, ulimits, cpu_count, cpu_percent,
    io_maximum_iops, io_maximum_bandwidth,
    binds, container_id_file, log_config, network_mode, port_bindings, restart_policy,
    auto_remove, volume_driver, volumes_from, mounts, console_size, annotations,
    cap_add, cap_drop, cgroupns_mode, dns, dns_options, dns_search, extra_hosts, group_add,
    ipc_mode, cgroup, links, oom_score_adj, pid_mode, privileged, publish_all_ports,
    readonly_rootfs, security_opt, storage_opt, tmpfs, uts_mode, userns_mode, shm_size, sysctls,
    runtime, isolation, masked_paths, readonly_paths,
});

bridge!(RestartPolicy <=> RestartPolicy { name, maximum_retry_count });
bridge_enum!(RestartPolicyNameEnum <=> RestartPolicyName {
    EMPTY = Empty, NO = No, ALWAYS = Always, UNLESS_STOPPED = UnlessStopped,
    ON_FAILURE = OnFailure,
});
bridge!(HostConfigLogConfig <=> LogConfig { typ, config });
bridge!(Mount <=> Mount {
    target, source, typ, read_only, consistency, bind_options, volume_options, image_options,
    tmpfs_options,
});
bridge_enum!(MountType <=> MountType {
    BIND = Bind, CLUSTER = Cluster, IMAGE = Image, NPIPE = Npipe, TMPFS = Tmpfs, VOLUME = Volume,
});
bridge!(MountBindOptions <=> BindOptions {
    propagation, non_recursive, create_mountpoint, read_only_non_recursive,
    read_only_force_recursive,
});
bridge_enum!(MountBindOptionsPropagationEnum <=> Propagation {
    EMPTY = Empty, PRIVATE = Private, RPRIVATE = Rprivate, SHARED = Shared, RSHARED = Rshared,
    SLAVE = Slave, RSLAVE = Rslave,
});
bridge!(MountVolumeOptions <=> VolumeOptions { no_copy, labels, driver_config, subpath });
bridge!(MountVolumeOptionsDriverConfig <=> DriverConfig { name, options });
bridge!(MountImageOptions <=> ImageOptions { subpath });
bridge!(MountTmpfsOptions <=> TmpfsOptions { size_bytes, mode, options });
bridge!(PortBinding <=> PortBinding { host_ip, host_port });
bridge!(HealthConfig <=> HealthConfig {
    test, interval, timeout, retries, start_period, start_interval,
});
bridge!(DeviceMapping <=> DeviceMapping { path_on_host, path_in_container, cgroup_permissions });
bridge!(DeviceRequest <=> DeviceRequest { driver, count, device_ids, capabilities, options });
bridge!(ResourcesUlimits <=> Ulimit { name, soft, hard });
bridge!(ResourcesBlkioWeightDevice <=> WeightDevice { path, weight });
bridge!(ThrottleDevice <=> ThrottleDevice { path, rate });
bridge_enum!(HostConfigCgroupnsModeEnum <=> CgroupnsMode {
    EMPTY = Empty, PRIVATE = Private, HOST = Host,
});
bridge_enum!(HostConfigIsolationEnum <=> Isolation {
    EMPTY = Empty, DEFAULT = Default, PROCESS = Process, HYPERV = Hyperv,
});

/// The `Config` part of a create body (the rest is `HostConfig` and `NetworkingConfig`).
pub fn spec_of_body(body: &api::ContainerCreateBody) -> ContainerSpec {
    let b = body.clone();
    ContainerSpec {
        hostname: b.hostname,
        domainname: b.domainname,
        user: b.user,
        attach_stdin: b.attach_stdin,
        attach_stdout: b.attach_stdout,
        attach_stderr: b.attach_stderr,
        exposed_ports: sorted(b.exposed_ports),
        tty: b.tty,
        open_stdin: b.open_stdin,
        stdin_once: b.stdin_once,
        env: b.env,
        cmd: b.cmd,
        healthcheck: b.healthcheck.bridge(),
        args_escaped: b.args_escaped,
        image: b.image,
        volumes: sorted(b.volumes),
        working_dir: b.working_dir,
        entrypoint: b.entrypoint,
        network_disabled: b.network_disabled,
        on_build: b.on_build,
        labels: b.labels,
        stop_signal: b.stop_signal,
        stop_timeout: b.stop_timeout,
        shell: b.shell,
    }
}

/// A create body's `HostConfig` (`{}` when it has none).
pub fn host_of_body(body: &api::ContainerCreateBody) -> HostSpec {
    body.host_config.clone().unwrap_or_default().bridge()
}

/// Inspect's `Config`, before dockerd's defaults.
pub fn config_model(spec: &ContainerSpec) -> api::ContainerConfig {
    spec.clone().bridge()
}

/// Inspect's `HostConfig`, before dockerd's defaults ([`super::container_inspect`]) but with
/// the log driver always named (SDKs read `HostConfig.LogConfig.Type` without checking:
/// docker-py's `containers.run`).
pub fn host_model(host: &HostSpec) -> api::HostConfig {
    let mut hc: api::HostConfig = host.clone().bridge();
    let log = hc.log_config.get_or_insert_with(Default::default);
    if log.typ.as_deref().unwrap_or("").is_empty() {
        log.typ = Some("json-file".to_string());
    }
    log.config.get_or_insert_with(Default::default);
    hc
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    /// A `HostConfig` with every field set goes in and comes out the same.
    #[test]
    fn every_field_goes_both_ways() {
        let hc = json!({
            "CpuShares": 512, "Memory": 1, "CgroupParent": "p", "BlkioWeight": 10,
            "BlkioWeightDevice": [{"Path": "/dev/a", "Weight": 5}],
            "BlkioDeviceReadBps": [{"Path": "/dev/a", "Rate": 1}],
            "BlkioDeviceWriteBps": [{"Path": "/dev/a", "Rate": 2}],
            "BlkioDeviceReadIOps": [{"Path": "/dev/a", "Rate": 3}],
            "BlkioDeviceWriteIOps": [{"Path": "/dev/a", "Rate": 4}],
            "CpuPeriod": 1, "CpuQuota": 2, "CpuRealtimePeriod": 3, "CpuRealtimeRuntime": 4,
            "CpusetCpus": "0", "CpusetMems": "0",
            "Devices": [{"PathOnHost": "/dev/null", "PathInContainer": "/n",
                         "CgroupPermissions": "rwm"}],
            "DeviceCgroupRules": ["c 1:3 r"],
            "DeviceRequests": [{"Driver": "d", "Count": -1, "DeviceIDs": ["0"],
                                "Capabilities": [["gpu"]], "Options": {"a": "b"}}],
            "MemoryReservation": 5, "MemorySwap": 6, "MemorySwappiness": 7, "NanoCpus": 8,
            "OomKillDisable": true, "Init": true, "PidsLimit": 9,
            "Ulimits": [{"Name": "nofile", "Soft": 1, "Hard": 2}],
            "CpuCount": 1, "CpuPercent": 2, "IOMaximumIOps": 3, "IOMaximumBandwidth": 4,
            "Binds": ["/a:/b:ro"], "ContainerIDFile": "f",
            "LogConfig": {"Type": "local", "Config": {"max-size": "1m"}},
            "NetworkMode": "host", "PortBindings": {"80/tcp": [{"HostIp": "", "HostPort": "8"}],
                                                    "81/udp": null},
            "RestartPolicy": {"Name": "on-failure", "MaximumRetryCount": 3},
            "AutoRemove": true, "VolumeDriver": "local", "VolumesFrom": ["x"],
            "Mounts": [{"Target": "/t", "Source": "/s", "Type": "bind", "ReadOnly": true,
                        "Consistency": "cached",
                        "BindOptions": {"Propagation": "rshared", "NonRecursive": true,
                                        "CreateMountpoint": true,
                                        "ReadOnlyNonRecursive": true,
                                        "ReadOnlyForceRecursive": false}},
                       {"Target": "/v", "Source": "v", "Type": "volume",
                        "VolumeOptions": {"NoCopy": true, "Labels": {"l": "1"},
                                          "DriverConfig": {"Name": "local",
                                                           "Options": {"o": "p"}},
                                          "Subpath": "sub"}},
                       {"Target": "/i", "Source": "img", "Type": "image",
                        "ImageOptions": {"Subpath": "s"}},
                       {"Target": "/m", "Type": "tmpfs",
                        "TmpfsOptions": {"SizeBytes": 1, "Mode": 2, "Options": [["exec"]]}}],
            "ConsoleSize": [24, 80], "Annotations": {"a": "b"},
            "CapAdd": ["NET_ADMIN"], "CapDrop": ["MKNOD"], "CgroupnsMode": "private",
            "Dns": ["1.1.1.1"], "DnsOptions": ["ndots:1"], "DnsSearch": ["x"],
            "ExtraHosts": ["a:1.2.3.4"], "GroupAdd": ["10"], "IpcMode": "shareable",
            "Cgroup": "c", "Links": ["/a:/b/a"], "OomScoreAdj": 100, "PidMode": "host",
            "Privileged": true, "PublishAllPorts": true, "ReadonlyRootfs": true,
            "SecurityOpt": ["no-new-privileges"], "StorageOpt": {"size": "1G"},
            "Tmpfs": {"/run": "size=1m"}, "UTSMode": "host", "UsernsMode": "host",
            "ShmSize": 1024, "Sysctls": {"net.ipv4.ip_forward": "1"}, "Runtime": "berth",
            "Isolation": "default", "MaskedPaths": ["/m"], "ReadonlyPaths": ["/r"]
        });
        let model: api::HostConfig = serde_json::from_value(hc.clone()).unwrap();
        let own: HostSpec = model.bridge();
        assert_eq!(own.cpu_shares, Some(512));
        // The engine's record names the fields as Docker does (version 1 records load so).
        assert_eq!(serde_json::from_value::<HostSpec>(hc.clone()).unwrap(), own);
        assert_eq!(own.oom_score_adj, Some(100));
        // Through the record's own form and back.
        let own: HostSpec = serde_json::from_slice(&serde_json::to_vec(&own).unwrap()).unwrap();
        let back = serde_json::to_value(Bridge::<api::HostConfig>::bridge(own)).unwrap();
        assert_eq!(back, hc);

        let config = json!({
            "Hostname": "h", "Domainname": "d", "User": "u", "AttachStdin": true,
            "AttachStdout": true, "AttachStderr": true, "ExposedPorts": {"80/tcp": {}},
            "Tty": true, "OpenStdin": true, "StdinOnce": true, "Env": ["A=1"], "Cmd": [],
            "Healthcheck": {"Test": ["CMD", "true"], "Interval": 1, "Timeout": 2,
                            "Retries": 3, "StartPeriod": 4, "StartInterval": 5},
            "ArgsEscaped": false, "Image": "busybox", "Volumes": {"/v": {}},
            "WorkingDir": "/w", "Entrypoint": ["sh"], "NetworkDisabled": false,
            "OnBuild": ["RUN x"], "Labels": {"l": "v"}, "StopSignal": "SIGINT",
            "StopTimeout": 3, "Shell": ["/bin/sh", "-c"]
        });
        let model: api::ContainerConfig = serde_json::from_value(config.clone()).unwrap();
        let own: ContainerSpec = model.bridge();
        assert_eq!(own.cmd, Some(vec![]), "an empty Cmd stays empty");
        let own: ContainerSpec =
            serde_json::from_slice(&serde_json::to_vec(&own).unwrap()).unwrap();
        assert_eq!(serde_json::to_value(config_model(&own)).unwrap(), config);
        let unset = config_model(&ContainerSpec::default());
        assert_eq!(
            serde_json::to_value(unset).unwrap(),
            Value::Object(Default::default())
        );
    }
}
