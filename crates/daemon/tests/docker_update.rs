//! `docker update` against berthd: new limits reach the running container's cgroups (read back
//! from the kernel), the restart policy changes, dockerd's refusals, and the Python SDK's
//! `Container.update`.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions unwrap too

mod common;

use common::{cgroup_value, python_sdk, skip, text, Daemon};

#[test]
fn docker_update_changes_a_running_containers_limits_and_restart_policy() {
    if skip() {
        return;
    }
    let d = Daemon::start();
    d.busybox("busybox");
    d.ok(&[
        "run", "-d", "--name", "upd", "-m", "64m", "busybox", "sleep", "1000",
    ]);
    let pid = d.ok(&["inspect", "-f", "{{.State.Pid}}", "upd"]);
    let pid = pid.trim();
    assert_eq!(
        cgroup_value(pid, "memory", "memory.limit_in_bytes"),
        "67108864"
    );
    let out = d.ok(&[
        "update",
        "--memory",
        "128m",
        "--memory-swap",
        "256m",
        "--cpu-shares",
        "512",
        "--pids-limit",
        "50",
        "--restart",
        "always",
        "upd",
    ]);
    assert_eq!(out.trim(), "upd");
    assert_eq!(
        cgroup_value(pid, "memory", "memory.limit_in_bytes"),
        "134217728"
    );
    assert_eq!(cgroup_value(pid, "cpu", "cpu.shares"), "512");
    assert_eq!(cgroup_value(pid, "pids", "pids.max"), "50");
    let inspect = d.ok(&[
        "inspect",
        "-f",
        "{{.HostConfig.Memory}} {{.HostConfig.MemorySwap}} {{.HostConfig.CpuShares}} {{.HostConfig.PidsLimit}} {{.HostConfig.RestartPolicy.Name}}",
        "upd",
    ]);
    assert_eq!(inspect.trim(), "134217728 268435456 512 50 always");

    // -1: no limit any more.
    d.ok(&["update", "--pids-limit", "-1", "upd"]);
    assert_eq!(cgroup_value(pid, "pids", "pids.max"), "max");
    d.ok(&["update", "--pids-limit", "50", "upd"]);
    // dockerd's refusals, and nothing changed by them.
    let out = d.docker(&["update", "--memory", "1m", "upd"]);
    assert!(!out.status.success());
    assert!(
        text(&out).1.contains("Minimum memory limit allowed is 6MB"),
        "{out:?}"
    );
    let out = d.docker(&["update", "--memory", "512m", "upd"]);
    assert!(
        text(&out)
            .1
            .contains("Memory limit should be smaller than already set memoryswap limit"),
        "{out:?}"
    );
    assert_eq!(
        cgroup_value(pid, "memory", "memory.limit_in_bytes"),
        "134217728"
    );
    let out = d.docker(&["update", "--cpu-shares", "10", "nosuch"]);
    assert!(
        text(&out).1.contains("No such container: nosuch"),
        "{out:?}"
    );

    // A created container keeps the new limits for its start.
    d.ok(&["create", "--name", "later", "busybox", "sleep", "1000"]);
    d.ok(&["update", "--pids-limit", "20", "later"]);
    d.ok(&["start", "later"]);
    let pid = d.ok(&["inspect", "-f", "{{.State.Pid}}", "later"]);
    assert_eq!(cgroup_value(pid.trim(), "pids", "pids.max"), "20");

    // The Python SDK.
    let out = python_sdk(
        &d,
        "import docker\n\
         c = docker.from_env().containers.get('upd')\n\
         print(c.update(mem_limit='96m', memswap_limit='256m'))\n\
         c.reload()\n\
         print(c.attrs['HostConfig']['Memory'])\n",
    );
    assert_eq!(out, "{'Warnings': []}\n100663296\n");
    let pid = d.ok(&["inspect", "-f", "{{.State.Pid}}", "upd"]);
    assert_eq!(
        cgroup_value(pid.trim(), "memory", "memory.limit_in_bytes"),
        "100663296"
    );
    d.ok(&["rm", "-f", "upd", "later"]);
}
