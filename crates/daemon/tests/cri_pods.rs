//! Pods and their containers through the CRI socket, driven by a Rust CRI client (k8s-cri
//! over tonic) as kubelet drives a runtime: a pod on a CNI network (Debian's `bridge`,
//! `host-local` and `portmap` plugins, from a conflist in the daemon's `--cni-conf-dir`) with
//! two containers sharing localhost, IPC and the hostname; its hostPort reached from the
//! host; logs in the CRI format; exit reasons, OOMKilled and stop timeouts; ExecSync;
//! kubelet's log rotation; a restart of berthd in the middle; and bad requests answered with
//! the right codes. CRI objects stay out of `docker ps`.

#![allow(clippy::unwrap_used)]

mod common;

#[path = "common/cri.rs"]
mod cri_world;

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use common::{free_port, host_address, http_get_at, portmap_rules, skip};
use cri_world::*;
use k8s_cri::v1 as cri;

/// Removes a test's cgroup parent (and its parent) from every v1 hierarchy.
struct CgroupGuard(String);

impl Drop for CgroupGuard {
    fn drop(&mut self) {
        for entry in std::fs::read_dir("/sys/fs/cgroup")
            .into_iter()
            .flatten()
            .flatten()
        {
            let dir = entry.path().join(self.0.trim_start_matches('/'));
            let _ = std::fs::remove_dir(&dir);
            if let Some(up) = dir.parent() {
                let _ = std::fs::remove_dir(up);
            }
        }
    }
}

#[test]
fn a_pod_of_two_containers_shares_localhost_ipc_and_its_hostname() {
    if skip() || plugins_missing() {
        return;
    }
    let p = Pods::start("a");
    runtime().block_on(async {
        let mut rt = client(&p.socket()).await;
        let status = rt.status(cri::StatusRequest::default()).await.unwrap();
        let conditions = status.into_inner().status.unwrap().conditions;
        let net = conditions
            .iter()
            .find(|c| c.r#type == "NetworkReady")
            .unwrap();
        assert!(net.status, "{conditions:?}");

        let port = free_port();
        let mut config = pod_config("web", &p.logs);
        config.port_mappings = vec![cri::PortMapping {
            protocol: cri::Protocol::Tcp as i32,
            container_port: 80,
            host_port: i32::from(port),
            host_ip: String::new(),
        }];
        // Namespaced sysctls of the pod: the network one in its network namespace, the IPC
        // one in its IPC namespace.
        config.linux = Some(cri::LinuxPodSandboxConfig {
            sysctls: [
                ("net.ipv4.ip_unprivileged_port_start".to_string(), "79".to_string()),
                ("kernel.shm_rmid_forced".to_string(), "1".to_string()),
            ]
            .into(),
            ..Default::default()
        });
        config.dns_config = Some(cri::DnsConfig {
            servers: vec!["10.96.0.10".to_string()],
            searches: vec!["default.svc.cluster.local".to_string()],
            options: vec!["ndots:5".to_string()],
        });
        // The pod's cgroup (kubelet makes `/kubepods/.../pod<uid>`; here one of the test's own,
        // removed by the guard) and a shared PID namespace.
        let parent = format!("/berth-cri-test-{}/pod-web", std::process::id());
        let _cgroups = CgroupGuard(parent.clone());
        let shared_pids = Some(cri::NamespaceOption {
            pid: cri::NamespaceMode::Pod as i32,
            ..Default::default()
        });
        let sysctls = config.linux.take().unwrap().sysctls;
        config.linux = Some(cri::LinuxPodSandboxConfig {
            sysctls,
            cgroup_parent: parent.clone(),
            security_context: Some(cri::LinuxSandboxSecurityContext {
                namespace_options: shared_pids.clone(),
                ..Default::default()
            }),
            ..Default::default()
        });
        let pod = run_pod(&mut rt, config.clone()).await;
        let st = pod_status(&mut rt, &pod).await;
        assert_eq!(st.state, cri::PodSandboxState::SandboxReady as i32);
        // The pause process's oom_score_adj: kubelet's -998, or berthd's own when that is
        // higher (the kernel refuses lower without CAP_SYS_RESOURCE).
        let info = rt
            .pod_sandbox_status(cri::PodSandboxStatusRequest {
                pod_sandbox_id: pod.clone(),
                verbose: true,
            })
            .await
            .unwrap()
            .into_inner()
            .info;
        let info: serde_json::Value = serde_json::from_str(&info["info"]).unwrap();
        let pause = info["pid"].as_i64().unwrap();
        let adj: i64 = std::fs::read_to_string(format!("/proc/{pause}/oom_score_adj"))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let own: i64 = std::fs::read_to_string("/proc/self/oom_score_adj")
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        // (berthd inherits the test's.)
        assert_eq!(adj, (-998).max(own), "berthd's own: {own}");
        let ip: Ipv4Addr = st.network.as_ref().unwrap().ip.parse().unwrap();
        assert!(ip.to_string().starts_with(&p.net), "{ip}");
        assert_eq!(st.labels["app"], "web");
        assert_eq!(st.annotations["note"], "berth");
        assert_eq!(st.metadata.as_ref().unwrap().name, "web");

        let server = start_container(
            &mut rt,
            &pod,
            &config,
            container_config(
                "server",
                "mkdir -p /www && echo hello > /www/index.html && echo shared > /dev/shm/token \
                 && echo started && echo oops >&2 && exec httpd -f -p 80 -h /www",
            ),
        )
        .await;
        let mut client_config = container_config("client", "exec sleep 1000");
        client_config.linux = Some(cri::LinuxContainerConfig {
            security_context: Some(cri::LinuxContainerSecurityContext {
                namespace_options: shared_pids,
                ..Default::default()
            }),
            ..Default::default()
        });
        let client_id = start_container(&mut rt, &pod, &config, client_config).await;
        // The pod's PID namespace: the pause process is its PID 1.
        let out = exec(&mut rt, &client_id, &["cat", "/proc/1/cmdline"]).await;
        assert_eq!(out.stdout, b"/dev/init\0--pause\0", "{out:?}");
        // Under the pod's cgroup.
        let out = exec(&mut rt, &client_id, &["cat", "/proc/self/cgroup"]).await;
        let cgroups = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(
            cgroups.lines().any(|l| l.contains(":memory:") && l.contains(&format!("{parent}/{client_id}"))),
            "{cgroups}"
        );

        // localhost is the pod's: the client reaches the server's port 80 on 127.0.0.1.
        let out = exec(
            &mut rt,
            &client_id,
            &["sh", "-c", "for i in $(seq 100); do wget -qO- http://127.0.0.1/ && exit 0; sleep 0.1; done; exit 1"],
        )
        .await;
        assert_eq!(out.exit_code, 0, "{out:?}");
        assert_eq!(String::from_utf8_lossy(&out.stdout), "hello\n");
        // IPC: the server's /dev/shm is the client's.
        let out = exec(&mut rt, &client_id, &["cat", "/dev/shm/token"]).await;
        assert_eq!(String::from_utf8_lossy(&out.stdout), "shared\n", "{out:?}");
        // The hostname and DNS are the pod's.
        let out = exec(&mut rt, &client_id, &["hostname"]).await;
        assert_eq!(String::from_utf8_lossy(&out.stdout), "web-host\n");
        let out = exec(&mut rt, &client_id, &["cat", "/etc/resolv.conf"]).await;
        let resolv = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(resolv.contains("nameserver 10.96.0.10"), "{resolv}");
        assert!(resolv.contains("search default.svc.cluster.local"), "{resolv}");
        assert!(resolv.contains("options ndots:5"), "{resolv}");
        // The same network namespace: the client sees the pod's address.
        let out = exec(&mut rt, &client_id, &["ip", "-4", "-o", "addr", "show", "eth0"]).await;
        assert!(
            String::from_utf8_lossy(&out.stdout).contains(&format!("{ip}/")),
            "{out:?}"
        );

        for (path, want) in [
            ("/proc/sys/net/ipv4/ip_unprivileged_port_start", "79\n"),
            ("/proc/sys/kernel/shm_rmid_forced", "1\n"),
        ] {
            let out = exec(&mut rt, &client_id, &["cat", path]).await;
            assert_eq!(String::from_utf8_lossy(&out.stdout), want, "{path}");
        }

        // The hostPort answers on the host.
        let body = http_get_at(host_address(), port).expect("no answer on the hostPort");
        assert!(body.ends_with("hello\n"), "{body}");

        // The server's log, in the CRI format.
        let log = p.logs.join("web/server/0.log");
        let lines = log_lines(&log, 2);
        let fields: Vec<Vec<&str>> = lines.iter().map(|l| l.splitn(4, ' ').collect()).collect();
        assert!(fields.iter().any(|f| f[1..] == ["stdout", "F", "started"]), "{lines:?}");
        assert!(fields.iter().any(|f| f[1..] == ["stderr", "F", "oops"]), "{lines:?}");
        assert!(humantime::parse_rfc3339(fields[0][0]).is_ok(), "{lines:?}");
        assert_eq!(
            container_status(&mut rt, &server).await.log_path,
            log.display().to_string()
        );

        // Lists, with filters; none of it in `docker ps`.
        let pods = rt
            .list_pod_sandbox(cri::ListPodSandboxRequest {
                filter: Some(cri::PodSandboxFilter {
                    label_selector: [("app".to_string(), "web".to_string())].into(),
                    ..Default::default()
                }),
            })
            .await
            .unwrap()
            .into_inner()
            .items;
        assert_eq!(pods.len(), 1);
        assert_eq!(pods[0].id, pod);
        let containers = rt
            .list_containers(cri::ListContainersRequest {
                filter: Some(cri::ContainerFilter {
                    pod_sandbox_id: pod.clone(),
                    label_selector: [("c".to_string(), "client".to_string())].into(),
                    ..Default::default()
                }),
            })
            .await
            .unwrap()
            .into_inner()
            .containers;
        assert_eq!(containers.len(), 1);
        assert_eq!(containers[0].id, client_id);
        assert_eq!(p.d.ok(&["ps", "-aq"]).trim(), "");
        assert!(!p.d.ok(&["network", "ls"]).contains("cri-"));
        assert!(!p.reserved().is_empty());
        assert!(!portmap_rules(&pod).is_empty());

        // Stop: the containers end, the pod is not ready, its address and port go (CNI DEL).
        rt.stop_pod_sandbox(cri::StopPodSandboxRequest {
            pod_sandbox_id: pod.clone(),
        })
        .await
        .unwrap();
        assert_eq!(
            pod_status(&mut rt, &pod).await.state,
            cri::PodSandboxState::SandboxNotready as i32
        );
        assert_eq!(
            container_status(&mut rt, &server).await.state,
            cri::ContainerState::ContainerExited as i32
        );
        assert!(p.reserved().is_empty(), "{:?}", p.reserved());
        assert!(portmap_rules(&pod).is_empty());
        // Remove, twice: the second finds nothing and is no error.
        for _ in 0..2 {
            rt.remove_pod_sandbox(cri::RemovePodSandboxRequest {
                pod_sandbox_id: pod.clone(),
            })
            .await
            .unwrap();
        }
        let left = rt
            .list_containers(cri::ListContainersRequest::default())
            .await
            .unwrap()
            .into_inner()
            .containers;
        assert!(left.is_empty(), "{left:?}");
        let err = rt
            .pod_sandbox_status(cri::PodSandboxStatusRequest {
                pod_sandbox_id: pod.clone(),
                verbose: false,
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), tonic::Code::NotFound);
    });
}

#[test]
fn exit_reasons_oom_and_stop_timeouts() {
    if skip() || plugins_missing() {
        return;
    }
    let p = Pods::start("b");
    runtime().block_on(async {
        let mut rt = client(&p.socket()).await;
        let config = pod_config("jobs", &p.logs);
        let pod = run_pod(&mut rt, config.clone()).await;

        let ok = start_container(&mut rt, &pod, &config, container_config("ok", "true")).await;
        let s = exited(&mut rt, &ok).await;
        assert_eq!((s.exit_code, s.reason.as_str()), (0, "Completed"));
        assert!(
            s.finished_at >= s.started_at && s.started_at >= s.created_at,
            "{s:?}"
        );

        let bad = start_container(&mut rt, &pod, &config, container_config("bad", "exit 3")).await;
        let s = exited(&mut rt, &bad).await;
        assert_eq!((s.exit_code, s.reason.as_str()), (3, "Error"));

        let mut hog = container_config("hog", "x=a; while true; do x=$x$x; done");
        hog.linux = Some(cri::LinuxContainerConfig {
            resources: Some(cri::LinuxContainerResources {
                memory_limit_in_bytes: 16 << 20,
                ..Default::default()
            }),
            ..Default::default()
        });
        let hog = start_container(&mut rt, &pod, &config, hog).await;
        let s = exited(&mut rt, &hog).await;
        assert_eq!(
            (s.exit_code, s.reason.as_str()),
            (137, "OOMKilled"),
            "{s:?}"
        );

        // A process that ignores SIGTERM is killed once the timeout is over.
        let stubborn = start_container(
            &mut rt,
            &pod,
            &config,
            container_config(
                "stubborn",
                "trap '' TERM; echo ready; while true; do sleep 0.1; done",
            ),
        )
        .await;
        log_lines(&p.logs.join("jobs/stubborn/0.log"), 1);
        let t0 = Instant::now();
        rt.stop_container(cri::StopContainerRequest {
            container_id: stubborn.clone(),
            timeout: 1,
        })
        .await
        .unwrap();
        let took = t0.elapsed();
        assert!(
            took >= Duration::from_secs(1) && took < Duration::from_secs(10),
            "{took:?}"
        );
        let s = container_status(&mut rt, &stubborn).await;
        assert_eq!((s.exit_code, s.reason.as_str()), (137, "Error"), "{s:?}");
        // A second stop is no error.
        rt.stop_container(cri::StopContainerRequest {
            container_id: stubborn.clone(),
            timeout: 1,
        })
        .await
        .unwrap();

        // ExecSync: exit codes, both streams, and a timeout.
        let mut sleeper = container_config("sleeper", "exec sleep 1000");
        sleeper.linux = Some(cri::LinuxContainerConfig {
            resources: Some(cri::LinuxContainerResources {
                oom_score_adj: 500,
                ..Default::default()
            }),
            security_context: Some(cri::LinuxContainerSecurityContext {
                masked_paths: vec!["/proc/keys".into()],
                readonly_paths: vec!["/proc/sys".into()],
                ..Default::default()
            }),
        });
        let sleeper = start_container(&mut rt, &pod, &config, sleeper).await;
        // (The pod's PID namespace is shared: the sleeper is not PID 1.)
        let script = r#"for p in /proc/[0-9]*; do
            [ "$(tr '\0' ' ' < $p/cmdline)" = "sleep 1000 " ] && cat $p/oom_score_adj; done; true"#;
        let out = exec(&mut rt, &sleeper, &["sh", "-c", script]).await;
        assert_eq!(String::from_utf8_lossy(&out.stdout), "500\n", "{out:?}");
        // kubelet's lists replace the defaults.
        let out = exec(&mut rt, &sleeper, &["cat", "/proc/self/mountinfo"]).await;
        let mounts = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(mounts.contains(" /proc/keys "), "{mounts}");
        assert!(mounts.contains(" /proc/sys ro,"), "{mounts}");
        assert!(!mounts.contains(" /proc/timer_list "), "{mounts}");
        let out = exec(
            &mut rt,
            &sleeper,
            &["sh", "-c", "echo out; echo err >&2; exit 7"],
        )
        .await;
        assert_eq!(out.exit_code, 7);
        assert_eq!(out.stdout, b"out\n");
        assert_eq!(out.stderr, b"err\n");
        let t0 = Instant::now();
        let err = rt
            .exec_sync(cri::ExecSyncRequest {
                container_id: sleeper.clone(),
                cmd: vec!["sleep".into(), "60".into()],
                timeout: 1,
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), tonic::Code::DeadlineExceeded, "{err:?}");
        assert!(t0.elapsed() < Duration::from_secs(10));
        // The timed-out process was killed.
        let out = exec(
            &mut rt,
            &sleeper,
            &["sh", "-c", "ps -o args | grep -c '^sleep 60' || true"],
        )
        .await;
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "0", "{out:?}");

        // A restricted container: another user and groups, a read-only root, one
        // capability, no new privileges, Docker's seccomp profile (RuntimeDefault).
        let mut restricted = container_config("restricted", "exec sleep 1000");
        restricted.linux = Some(cri::LinuxContainerConfig {
            resources: None,
            security_context: Some(cri::LinuxContainerSecurityContext {
                run_as_user: Some(cri::Int64Value { value: 1234 }),
                run_as_group: Some(cri::Int64Value { value: 5678 }),
                supplemental_groups: vec![42],
                readonly_rootfs: true,
                no_new_privs: true,
                capabilities: Some(cri::Capability {
                    add_capabilities: vec!["CHOWN".into()],
                    drop_capabilities: vec!["ALL".into()],
                    ..Default::default()
                }),
                seccomp: Some(cri::SecurityProfile {
                    profile_type: cri::security_profile::ProfileType::RuntimeDefault as i32,
                    localhost_ref: String::new(),
                }),
                ..Default::default()
            }),
        });
        let restricted = start_container(&mut rt, &pod, &config, restricted).await;
        let out = exec(&mut rt, &restricted, &["id"]).await;
        let id = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(id.starts_with("uid=1234 gid=5678"), "{id}");
        assert!(id.contains("42"), "{id}");
        let out = exec(&mut rt, &restricted, &["touch", "/new-file"]).await;
        assert_ne!(out.exit_code, 0, "{out:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("Read-only"),
            "{out:?}"
        );
        let out = exec(&mut rt, &restricted, &["cat", "/proc/self/status"]).await;
        let status = String::from_utf8_lossy(&out.stdout).to_string();
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .map(str::trim)
                .unwrap_or_default()
                .to_string()
        };
        assert_eq!(field("CapBnd:"), "0000000000000001", "{status}");
        assert_eq!(field("NoNewPrivs:"), "1", "{status}");
        assert_eq!(field("Seccomp:"), "2", "{status}");
        // Without a profile, a pod's container is unconfined, as containerd makes it.
        let out = exec(&mut rt, &sleeper, &["cat", "/proc/self/status"]).await;
        let status = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(status.contains("Seccomp:\t0"), "{status}");

        // kubelet's rotation: rename, reopen; the next lines go to a new file.
        let mut talker = container_config(
            "talker",
            "i=0; while true; do i=$((i+1)); echo line$i; sleep 0.05; done",
        );
        talker.log_path = "talker/0.log".to_string();
        let talker = start_container(&mut rt, &pod, &config, talker).await;
        let log = p.logs.join("jobs/talker/0.log");
        log_lines(&log, 2);
        std::fs::rename(&log, p.logs.join("jobs/talker/0.log.1")).unwrap();
        rt.reopen_container_log(cri::ReopenContainerLogRequest {
            container_id: talker.clone(),
        })
        .await
        .unwrap();
        let fresh = log_lines(&log, 2);
        assert!(fresh[0].contains(" stdout F line"), "{fresh:?}");
        // Not running: the reopen is refused.
        let err = rt
            .reopen_container_log(cri::ReopenContainerLogRequest {
                container_id: ok.clone(),
            })
            .await
            .unwrap_err();
        assert_ne!(err.code(), tonic::Code::Ok);

        stop_and_remove_pod(&mut rt, &pod).await;
    });
}

#[test]
fn pods_and_containers_survive_a_restart_of_berthd() {
    if skip() || plugins_missing() {
        return;
    }
    let mut p = Pods::start("c");
    let (pod, app) = runtime().block_on(async {
        let mut rt = client(&p.socket()).await;
        let config = pod_config("keep", &p.logs);
        let pod = run_pod(&mut rt, config.clone()).await;
        let app = start_container(
            &mut rt,
            &pod,
            &config,
            container_config("app", "exec sleep 1000"),
        )
        .await;
        (pod, app)
    });
    let before = runtime().block_on(async {
        let mut rt = client(&p.socket()).await;
        pod_status(&mut rt, &pod).await.network.unwrap().ip
    });
    p.d.kill9();
    p.d.spawn();
    runtime().block_on(async {
        let mut rt = client(&p.socket()).await;
        let st = pod_status(&mut rt, &pod).await;
        assert_eq!(st.state, cri::PodSandboxState::SandboxReady as i32);
        assert_eq!(st.network.unwrap().ip, before);
        let s = container_status(&mut rt, &app).await;
        assert_eq!(s.state, cri::ContainerState::ContainerRunning as i32);
        let out = exec(&mut rt, &app, &["hostname"]).await;
        assert_eq!(String::from_utf8_lossy(&out.stdout), "keep-host\n");
        rt.stop_pod_sandbox(cri::StopPodSandboxRequest {
            pod_sandbox_id: pod.clone(),
        })
        .await
        .unwrap();
        // The DEL after the restart released the address.
        assert!(p.reserved().is_empty(), "{:?}", p.reserved());
        rt.remove_pod_sandbox(cri::RemovePodSandboxRequest {
            pod_sandbox_id: pod.clone(),
        })
        .await
        .unwrap();
    });
}

#[test]
fn bad_requests_get_the_right_codes() {
    if skip() || plugins_missing() {
        return;
    }
    let p = Pods::start("d");
    runtime().block_on(async {
        let mut rt = client(&p.socket()).await;
        let code = |r: Result<tonic::Response<cri::RunPodSandboxResponse>, tonic::Status>| {
            r.unwrap_err().code()
        };
        let no_meta = rt
            .run_pod_sandbox(cri::RunPodSandboxRequest {
                config: Some(cri::PodSandboxConfig::default()),
                runtime_handler: String::new(),
            })
            .await;
        assert_eq!(code(no_meta), tonic::Code::InvalidArgument);
        let handler = rt
            .run_pod_sandbox(cri::RunPodSandboxRequest {
                config: Some(pod_config("h", &p.logs)),
                runtime_handler: "kata".to_string(),
            })
            .await;
        assert_eq!(code(handler), tonic::Code::NotFound);

        // A name the engine refuses (kubelet's are DNS labels).
        let mut bad_name = pod_config("bad", &p.logs);
        bad_name.metadata.as_mut().unwrap().name = "a/b".into();
        let err = rt
            .run_pod_sandbox(cri::RunPodSandboxRequest {
                config: Some(bad_name),
                runtime_handler: String::new(),
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err:?}");

        let mut slice = pod_config("slice", &p.logs);
        slice.linux = Some(cri::LinuxPodSandboxConfig {
            cgroup_parent: "kubepods-besteffort-pod1.slice".into(),
            ..Default::default()
        });
        let err = rt
            .run_pod_sandbox(cri::RunPodSandboxRequest {
                config: Some(slice),
                runtime_handler: String::new(),
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), tonic::Code::InvalidArgument);
        assert!(err.message().contains("cgroupfs"), "{err:?}");

        let config = pod_config("dup", &p.logs);
        let pod = run_pod(&mut rt, config.clone()).await;
        let again = rt
            .run_pod_sandbox(cri::RunPodSandboxRequest {
                config: Some(config.clone()),
                runtime_handler: String::new(),
            })
            .await;
        assert_eq!(code(again), tonic::Code::AlreadyExists);

        let create = |sandbox: &str, c: cri::ContainerConfig| cri::CreateContainerRequest {
            pod_sandbox_id: sandbox.to_string(),
            config: Some(c),
            sandbox_config: Some(config.clone()),
        };
        let err = rt
            .create_container(create("nosuchpod", container_config("x", "true")))
            .await
            .unwrap_err();
        assert_eq!(err.code(), tonic::Code::NotFound, "{err:?}");
        let mut missing = container_config("x", "true");
        missing.image.as_mut().unwrap().image = "no/such:image".to_string();
        let err = rt
            .create_container(create(&pod, missing))
            .await
            .unwrap_err();
        assert_eq!(err.code(), tonic::Code::NotFound, "{err:?}");
        rt.create_container(create(&pod, container_config("x", "true")))
            .await
            .unwrap();
        let err = rt
            .create_container(create(&pod, container_config("x", "true")))
            .await
            .unwrap_err();
        assert_eq!(err.code(), tonic::Code::AlreadyExists, "{err:?}");
        // A pod's id is not a container's, nor the other way round.
        let err = rt
            .container_status(cri::ContainerStatusRequest {
                container_id: pod.clone(),
                verbose: false,
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), tonic::Code::NotFound);
        // Removing what is not there is no error.
        rt.remove_container(cri::RemoveContainerRequest {
            container_id: "0123456789ab".to_string(),
        })
        .await
        .unwrap();
        rt.remove_pod_sandbox(cri::RemovePodSandboxRequest {
            pod_sandbox_id: pod.clone(),
        })
        .await
        .unwrap();
    });
}

#[test]
fn a_host_network_pod_is_in_the_hosts_network_and_uts_namespaces() {
    if skip() || plugins_missing() {
        return;
    }
    let p = Pods::start("h");
    runtime().block_on(async {
        let mut rt = client(&p.socket()).await;
        let mut config = pod_config("hostnet", &p.logs);
        config.hostname = String::new();
        config.linux = Some(cri::LinuxPodSandboxConfig {
            security_context: Some(cri::LinuxSandboxSecurityContext {
                namespace_options: Some(cri::NamespaceOption {
                    network: cri::NamespaceMode::Node as i32,
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        });
        let pod = run_pod(&mut rt, config.clone()).await;
        let st = pod_status(&mut rt, &pod).await;
        assert_eq!(st.state, cri::PodSandboxState::SandboxReady as i32);
        // No CNI: no address of the pod's own, none taken from the pool.
        assert_eq!(st.network.unwrap().ip, "");
        assert!(p.reserved().is_empty());
        let app = start_container(
            &mut rt,
            &pod,
            &config,
            container_config("app", "exec sleep 1000"),
        )
        .await;
        let ns = |path: &str| std::fs::read_link(path).unwrap().display().to_string();
        let out = exec(
            &mut rt,
            &app,
            &[
                "sh",
                "-c",
                "readlink /proc/self/ns/net; readlink /proc/self/ns/uts",
            ],
        )
        .await;
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            format!("{}\n{}\n", ns("/proc/self/ns/net"), ns("/proc/self/ns/uts"))
        );
        stop_and_remove_pod(&mut rt, &pod).await;
    });
}
