//! Housekeeping through the docker CLI: `container prune` with dockerd's filters and the space
//! it reports, `--storage-opt` refused, and `docker events` with each of dockerd's filters.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions unwrap too

mod common;

use common::{skip, text, Daemon};

/// `container prune` with dockerd's filters, and the space its writable layers held;
/// `--storage-opt` refused as overlay2 without quotas refuses it.
#[test]
fn container_prune_filters_and_reports_the_space_it_freed() {
    if skip() {
        return;
    }
    let d = Daemon::start();
    d.busybox("bb:local");
    d.ok(&[
        "run",
        "--name",
        "big",
        "bb:local",
        "dd",
        "if=/dev/zero",
        "of=/blob",
        "bs=1024",
        "count=2048",
    ]);
    d.ok(&[
        "run", "--name", "kept", "--label", "keep=1", "bb:local", "true",
    ]);
    let out = d.ok(&["container", "prune", "-f", "--filter", "label!=keep"]);
    assert!(out.contains("Deleted Containers:"), "{out}");
    let reclaimed = out
        .lines()
        .find_map(|l| l.strip_prefix("Total reclaimed space: "))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(
        reclaimed.ends_with("MB") && reclaimed.starts_with('2'),
        "{out}"
    );
    let left = d.ok(&["ps", "-a", "--format", "{{.Names}}"]);
    assert_eq!(left.trim(), "kept");
    // dockerd's one `prune` event per prune, with the bytes freed (image and network prunes too).
    d.ok(&["image", "prune", "-f"]);
    d.ok(&["network", "prune", "-f"]);
    let until = (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 1)
    .to_string();
    let pruned = d.ok(&[
        "events",
        "--since",
        "0",
        "--until",
        &until,
        "--filter",
        "event=prune",
        "--format",
        "{{.Type}} {{index .Actor.Attributes \"reclaimed\"}}",
    ]);
    let pruned: Vec<&str> = pruned.lines().collect();
    assert_eq!(pruned.len(), 3, "{pruned:?}");
    assert!(pruned[0].starts_with("container 2"), "{pruned:?}");
    assert!(pruned[1].starts_with("image "), "{pruned:?}");
    assert!(pruned[2].starts_with("network"), "{pruned:?}");
    let out = d.docker(&["container", "prune", "-f", "--filter", "colour=red"]);
    assert!(
        text(&out).1.contains("invalid filter 'colour'"),
        "{:?}",
        text(&out)
    );

    let out = d.docker(&[
        "run",
        "--name",
        "quota",
        "--storage-opt",
        "size=1G",
        "bb:local",
        "true",
    ]);
    assert!(
        text(&out).1.contains(
            "--storage-opt is supported only for overlay over xfs with 'pquota' mount option"
        ),
        "{:?}",
        text(&out)
    );
    let left = d.ok(&["ps", "-a", "--format", "{{.Names}}"]);
    assert_eq!(left.trim(), "kept", "nothing was created");
}

/// `docker events` with each of dockerd's filters, over image, volume, network and container
/// events (image `tag`, `untag`, `delete`, `import` and `save` included).
#[test]
fn events_filter_as_dockerd_filters() {
    if skip() {
        return;
    }
    let d = Daemon::start();
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        .to_string();
    d.busybox("bb:local");
    d.ok(&["tag", "bb:local", "other:2"]);
    d.ok(&["volume", "create", "evvol"]);
    d.ok(&["network", "create", "evnet"]);
    d.ok(&[
        "run",
        "--name",
        "evc",
        "--label",
        "team=a",
        "--network",
        "evnet",
        "bb:local",
        "true",
    ]);
    let saved = d.dir.join("saved.tar");
    d.ok(&["save", "-o", saved.to_str().unwrap(), "other:2"]);
    d.ok(&["rmi", "other:2"]);
    d.ok(&["rm", "evc"]);
    d.ok(&["volume", "rm", "evvol"]);
    let until = (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 1)
    .to_string();
    let events = |filters: &[&str]| -> Vec<String> {
        let mut args = vec!["events", "--since", &since, "--until", &until];
        for f in filters {
            args.extend(["--filter", f]);
        }
        args.extend(["--format", "{{.Type}} {{.Action}}"]);
        d.ok(&args).lines().map(str::to_string).collect()
    };
    let images = events(&["type=image"]);
    for action in ["image import", "image tag", "image save", "image untag"] {
        assert!(images.iter().any(|l| l == action), "{action} in {images:?}");
    }
    assert_eq!(events(&["image=other:2", "event=tag"]), ["image tag"]);
    assert_eq!(
        events(&["volume=evvol"]),
        ["volume create", "volume destroy"]
    );
    let net = events(&["network=evnet"]);
    assert!(net.starts_with(&["network create".to_string()]), "{net:?}");
    assert!(net.iter().any(|l| l == "network connect"), "{net:?}");
    let labelled = events(&["label=team=a", "event=start"]);
    assert_eq!(labelled, ["container start"]);
    assert_eq!(events(&["container=evc", "event=die"]), ["container die"]);
    assert!(events(&["container=nosuch"]).is_empty());
    assert!(events(&["scope=swarm"]).is_empty());
}

/// dockerd's volume events around a container's run: `mount` at its start (with the
/// container, target, driver, propagation and mode), `unmount` at its exit, `destroy` of its
/// anonymous volume at `rm -v`, and one `prune` event (the bytes reclaimed) per `volume prune`.
#[test]
fn volume_events_follow_a_containers_mounts() {
    if skip() {
        return;
    }
    let d = Daemon::start();
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        .to_string();
    d.busybox("bb:local");
    d.ok(&["volume", "create", "mvol"]);
    let id = d.ok(&[
        "run",
        "-d",
        "--name",
        "mv",
        "-v",
        "mvol:/data",
        "-v",
        "/anon",
        "bb:local",
        "sleep",
        "100",
    ]);
    let id = id.trim().to_string();
    let anon = d.ok(&[
        "inspect",
        "-f",
        "{{range .Mounts}}{{if eq .Destination \"/anon\"}}{{.Name}}{{end}}{{end}}",
        "mv",
    ]);
    let anon = anon.trim().to_string();
    assert_eq!(anon.len(), 64, "{anon:?}");
    d.ok(&["stop", "-t", "1", "mv"]);
    d.ok(&["rm", "-v", "mv"]);
    d.ok(&["volume", "prune", "-f"]);
    let until = (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 1)
    .to_string();
    let events = |filters: &[&str], format: &str| -> Vec<String> {
        let mut args = vec!["events", "--since", &since, "--until", &until];
        for f in filters {
            args.extend(["--filter", f]);
        }
        args.extend(["--format", format]);
        d.ok(&args).lines().map(str::to_string).collect()
    };
    let actions = "{{.Type}} {{.Action}}";
    assert_eq!(
        events(&["volume=mvol"], actions),
        ["volume create", "volume mount", "volume unmount"]
    );
    assert_eq!(
        events(&[&format!("volume={anon}")], actions),
        [
            "volume create",
            "volume mount",
            "volume unmount",
            "volume destroy"
        ]
    );
    let all = events(&["type=volume"], "{{.Action}} {{.Actor.ID}}");
    assert_eq!(
        all.iter().filter(|l| l.starts_with("mount ")).count(),
        2,
        "{all:?}"
    );
    assert_eq!(all.last().map(String::as_str), Some("prune "), "{all:?}");

    let attributes = |filters: &[&str]| -> serde_json::Value {
        let lines = events(filters, "{{json .Actor.Attributes}}");
        assert_eq!(lines.len(), 1, "{filters:?}: {lines:?}");
        serde_json::from_str(&lines[0]).unwrap()
    };
    assert_eq!(
        attributes(&["volume=mvol", "event=mount"]),
        serde_json::json!({
            "container": id,
            "destination": "/data",
            "driver": "local",
            "propagation": "",
            "read/write": "true",
        })
    );
    assert_eq!(
        attributes(&["volume=mvol", "event=unmount"]),
        serde_json::json!({"container": id, "driver": "local"})
    );
    let pruned = attributes(&["type=volume", "event=prune"]);
    assert!(
        pruned["reclaimed"]
            .as_str()
            .is_some_and(|r| r.parse::<u64>().is_ok()),
        "{pruned}"
    );
}
