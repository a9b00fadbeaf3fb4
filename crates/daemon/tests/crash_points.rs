//! berthd killed (SIGKILL) in the middle of each kind of operation: after a restart, `ps -a`,
//! `images`, `volume ls` and `network ls` answer and agree with what is below them, everything
//! can be removed, and then nothing is left: no process, mount, cgroup, namespace or file.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions unwrap too

mod common;

use std::path::Path;
use std::time::Duration;

use common::{skip, text, Daemon};

/// Starts `args` of the docker CLI in the background, kills berthd `after` later, waits for
/// the CLI (bounded), and starts berthd again.
fn kill_during(d: &mut Daemon, args: &[&str], after: Duration) {
    let mut cmd = d.docker_command(args);
    // `build` with Berth's builder (the classic builder's API): the CLI has no buildx here.
    cmd.env("DOCKER_BUILDKIT", "0");
    let client = std::thread::spawn(move || {
        berth_tests::run_with_timeout(&mut cmd, Duration::from_secs(60))
    });
    // The fault's timing, not a wait for a condition: the operation is cut wherever it is.
    std::thread::sleep(after);
    d.kill9();
    let _ = client.join();
    d.spawn();
}

/// Every process whose command line mentions this daemon's directory (monitors, containers'
/// `--dir`), but for berthd itself.
fn processes_of(d: &Daemon) -> Vec<String> {
    let needle = d.dir.display().to_string();
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let pid: i32 = e.file_name().to_str()?.parse().ok()?;
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            (cmdline.contains(&needle) && !cmdline.contains("berthd"))
                .then(|| format!("{pid}: {cmdline}"))
        })
        .collect()
}

/// Removes every container, image but `busybox`, volume and network the test made.
fn remove_everything(d: &Daemon) {
    let all = |args: &[&str]| -> Vec<String> {
        d.ok(args).split_whitespace().map(str::to_string).collect()
    };
    for id in all(&["ps", "-aq"]) {
        d.ok(&["rm", "-f", "-v", &id]);
    }
    for v in all(&["volume", "ls", "-q"]) {
        d.ok(&["volume", "rm", &v]);
    }
    for n in all(&["network", "ls", "-q", "--filter", "type=custom"]) {
        d.ok(&["network", "rm", &n]);
    }
    for image in all(&["images", "--format", "{{.Repository}}:{{.Tag}}"]) {
        if image != "busybox:latest" {
            let out = d.docker(&["rmi", "-f", &image]);
            assert!(
                out.status.success() || text(&out).1.contains("No such image"),
                "{out:?}"
            );
        }
    }
    // The build cache holds the layers of the builds that completed.
    d.ok(&["builder", "prune", "-af"]);
}

/// What must be empty once everything is removed.
fn assert_nothing_left(d: &Daemon, what: &str, before: &[String]) {
    assert_eq!(processes_of(d), Vec::<String>::new(), "{what}: processes");
    assert_eq!(d.mounts_under(), Vec::<String>::new(), "{what}: mounts");
    let cgroups = Path::new("/sys/fs/cgroup/memory/berth");
    let leftover_cgroups: Vec<String> = std::fs::read_dir(cgroups)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|id| d.dir.join("data/containers").join(id).exists() || id.len() == 64)
        .filter(|id| {
            std::fs::read_to_string(cgroups.join(id).join("cgroup.procs"))
                .is_ok_and(|p| !p.trim().is_empty())
        })
        .collect();
    assert_eq!(
        leftover_cgroups,
        Vec::<String>::new(),
        "{what}: cgroups with processes"
    );
    for dir in ["run/netns", "run/runtime", "run/c", "data/image/tmp"] {
        let entries: Vec<String> = std::fs::read_dir(d.dir.join(dir))
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            // The runtime's cache of compiled seccomp filters stays, as a cache does.
            .filter(|name| !(dir == "run/runtime" && name == "@seccomp-cache"))
            .collect();
        assert_eq!(entries, Vec::<String>::new(), "{what}: {dir}");
    }
    let trash: Vec<String> = ["data/containers", "data/volumes"]
        .iter()
        .flat_map(|dir| {
            std::fs::read_dir(d.dir.join(dir))
                .into_iter()
                .flatten()
                .flatten()
        })
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(trash, Vec::<String>::new(), "{what}: records or volumes");
    // The image store holds what it held before the test's operations (busybox), nothing of
    // the 20 MB image the pulls fetched: no blob, no layer, no download in progress.
    let now = store_contents(d);
    assert_eq!(now, *before, "{what}: blobs, layers and downloads");
}

/// The names of the image store's blobs, snapshots and downloads in progress.
fn store_contents(d: &Daemon) -> Vec<String> {
    let image = d.dir.join("data/image");
    [
        "content/blobs/sha256",
        "content/ingest",
        "snapshots/overlay/snapshots",
    ]
    .iter()
    .flat_map(|dir| {
        std::fs::read_dir(image.join(dir))
            .into_iter()
            .flatten()
            .flatten()
            .map(move |e| format!("{dir}/{}", e.file_name().to_string_lossy()))
    })
    .collect::<std::collections::BTreeSet<_>>()
    .into_iter()
    .collect()
}

#[test]
fn a_daemon_killed_in_the_middle_of_anything_leaves_a_consistent_and_removable_state() {
    if skip() {
        return;
    }
    let mut d = Daemon::start();
    d.busybox("busybox");
    let before = store_contents(&d);
    let archive = d.dir.join("busybox-saved.tar");
    d.ok(&["save", "-o", archive.to_str().unwrap(), "busybox"]);
    d.ok(&[
        "run",
        "-d",
        "--name",
        "committed",
        "busybox",
        "sleep",
        "300",
    ]);
    d.ok(&["volume", "create", "doomed"]);
    // An image with a 20 MB layer of its own, pushed to a registry and removed here, so that
    // each pull below downloads and unpacks it (until one completes).
    let registry = berth_tests::registry::Registry::start().unwrap();
    let pulled = format!("{}/crash/big:1", registry.host());
    d.ok(&[
        "run",
        "--name",
        "big",
        "busybox",
        "sh",
        "-c",
        "head -c 20000000 /dev/urandom >/blob",
    ]);
    d.ok(&["commit", "big", &pulled]);
    d.ok(&["rm", "big"]);
    d.ok(&["push", &pulled]);
    d.ok(&["rmi", &pulled]);
    // A build whose steps copy, run and write 5 MB: cut in the context, a step or a commit.
    let context = d.dir.join("build-context");
    std::fs::create_dir_all(&context).unwrap();
    std::fs::write(context.join("f"), "f\n").unwrap();
    std::fs::write(
        context.join("Dockerfile"),
        "FROM busybox\nCOPY f /f\nRUN head -c 5000000 /dev/urandom > /r && sleep 0.1\nRUN true\n",
    )
    .unwrap();
    let operations: Vec<Vec<String>> = vec![
        vec!["create", "--name", "made", "busybox", "true"],
        vec!["run", "-d", "--name", "started", "busybox", "sleep", "300"],
        vec![
            "run",
            "-d",
            "-v",
            "vol1:/data",
            "--network",
            "bridge",
            "busybox",
            "sleep",
            "300",
        ],
        vec!["load", "-i", archive.to_str().unwrap()],
        vec!["pull", &pulled],
        vec!["volume", "rm", "doomed"],
        vec!["network", "create", "crashnet"],
        vec!["commit", "committed", "snapshot:1"],
        vec!["rm", "-f", "committed"],
        vec!["build", "-t", "built:1", context.to_str().unwrap()],
    ]
    .into_iter()
    .map(|v| v.into_iter().map(str::to_string).collect())
    .collect();
    for op in &operations {
        let args: Vec<&str> = op.iter().map(String::as_str).collect();
        // A pull of 20 MB from a local registry lasts longer than the rest: it is also cut
        // later, when it has blobs and layers in progress.
        let delays: &[u64] = if op[0] == "pull" || op[0] == "build" {
            &[0, 15, 60, 150, 300]
        } else {
            &[0, 15, 60]
        };
        for &delay_ms in delays {
            kill_during(&mut d, &args, Duration::from_millis(delay_ms));
            let what = format!("{} after {delay_ms} ms", op.join(" "));
            // The daemon's view answers.
            for list in [
                &["ps", "-a"][..],
                &["images"],
                &["volume", "ls"],
                &["network", "ls"],
            ] {
                d.ok(list);
            }
            // Every container that says it runs has a live init; the others can start.
            let ids = d.ok(&["ps", "-aq"]);
            for id in ids.split_whitespace() {
                let running = d.ok(&["inspect", "-f", "{{.State.Running}} {{.State.Pid}}", id]);
                let mut parts = running.split_whitespace();
                if parts.next() == Some("true") {
                    let pid = parts.next().unwrap_or("0");
                    assert!(
                        Path::new(&format!("/proc/{pid}")).exists(),
                        "{what}: {id} runs as {pid}?"
                    );
                }
            }
        }
    }
    remove_everything(&d);
    assert_nothing_left(&d, "after removing everything", &before);
    // And it all works again, the pull too.
    d.ok(&["run", "--rm", "busybox", "true"]);
    d.ok(&["pull", &pulled]);
    let mut cmd = d.docker_command(&["build", "-t", "built:2", context.to_str().unwrap()]);
    cmd.env("DOCKER_BUILDKIT", "0");
    let out = berth_tests::run_with_timeout(&mut cmd, Duration::from_secs(120));
    assert!(out.status.success(), "{out:?}");
    d.ok(&["run", "--rm", "built:2", "test", "-s", "/r"]);
    d.ok(&["run", "--rm", &pulled, "test", "-s", "/blob"]);
}
