#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions unwrap too

//! Container files and figures with the real docker CLI: `top`, `stats`, `export`, `cp` in both
//! directions (running, stopped and never-started containers, symlinks pointing outside the
//! container), `commit`.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{skip, text, Daemon};

/// A scratch directory inside the daemon's directory (removed with it).
fn scratch(d: &Daemon, name: &str) -> PathBuf {
    let dir = d.dir.join("scratch").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The names in a tar file, as `tar -tf` lists them.
fn tar_list(path: &Path) -> Vec<String> {
    let out = Command::new("tar").arg("-tf").arg(path).output().unwrap();
    assert!(out.status.success(), "tar -tf {}", path.display());
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.trim_start_matches("./").to_string())
        .collect()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn top_and_stats_show_the_container() {
    if skip() {
        return;
    }
    let d = Daemon::start();
    d.busybox("bb:local");
    d.ok(&["run", "-d", "--name", "t1", "bb:local", "sleep", "1000"]);

    let top = d.ok(&["top", "t1"]);
    let mut lines = top.lines();
    let header = lines.next().unwrap();
    for title in ["UID", "PID", "PPID", "CMD"] {
        assert!(header.contains(title), "{top}");
    }
    let rows: Vec<&str> = lines.collect();
    assert_eq!(rows.len(), 1, "{top}");
    assert!(rows[0].ends_with("sleep 1000"), "{top}");
    let top = d.ok(&["top", "t1", "-o", "pid,comm"]);
    assert!(top.lines().next().unwrap().contains("COMMAND"), "{top}");
    assert!(top.lines().nth(1).unwrap().ends_with("sleep"), "{top}");

    let row = d.ok(&[
        "stats",
        "--no-stream",
        "--format",
        "{{.Name}}|{{.CPUPerc}}|{{.MemUsage}}|{{.PIDs}}",
        "t1",
    ]);
    let fields: Vec<&str> = row.trim().split('|').collect();
    assert_eq!(fields.len(), 4, "{row}");
    assert_eq!(fields[0], "t1");
    assert!(fields[1].ends_with('%'), "{row}");
    let (usage, limit) = fields[2].split_once(" / ").unwrap();
    assert!(usage.ends_with('B') && limit.ends_with('B'), "{row}");
    assert_ne!(limit.trim(), "0B", "{row}");
    assert_eq!(fields[3], "1", "{row}");

    // The table of every running container.
    let table = d.ok(&["stats", "--no-stream"]);
    let header = table.lines().next().unwrap();
    for title in ["CONTAINER ID", "NAME", "CPU %", "MEM USAGE / LIMIT", "PIDS"] {
        assert!(header.contains(title), "{table}");
    }
    assert!(table.lines().any(|l| l.contains("t1")), "{table}");

    // The API's object, streamed: two objects a second apart, the second with precpu_stats.
    let out = Command::new("curl")
        .args([
            "-s",
            "-N",
            "--max-time",
            "2.5",
            "--unix-socket",
            s(&d.socket),
        ])
        .arg("http://localhost/v1.41/containers/t1/stats?stream=1")
        .output()
        .unwrap();
    let body = String::from_utf8_lossy(&out.stdout);
    let objects: Vec<serde_json::Value> = body
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(objects.len() >= 2, "{body}");
    assert_eq!(objects[1]["name"], "/t1");
    assert!(
        objects[1]["precpu_stats"]["system_cpu_usage"]
            .as_u64()
            .unwrap()
            > 0
    );
    assert!(objects[1]["memory_stats"]["usage"].as_u64().unwrap() > 0);

    d.ok(&["rm", "-f", "t1"]);
    d.ok(&["create", "--name", "t2", "bb:local", "true"]);
    let out = d.docker(&["top", "t2"]);
    assert!(!out.status.success());
    assert!(text(&out).1.contains("is not running"), "{:?}", text(&out));
}

#[test]
fn export_has_the_image_and_the_containers_files() {
    if skip() {
        return;
    }
    let d = Daemon::start();
    d.busybox("bb:local");
    // Stopped: the snapshot is mounted for the export, and unmounted after it.
    d.ok(&[
        "run",
        "--name",
        "e1",
        "bb:local",
        "sh",
        "-c",
        "echo written > /written",
    ]);
    let dir = scratch(&d, "export");
    let tar = dir.join("e1.tar");
    d.ok(&["export", "e1", "-o", s(&tar)]);
    let names = tar_list(&tar);
    assert!(names.iter().any(|n| n == "bin/busybox"), "{names:?}");
    assert!(names.iter().any(|n| n == "written"), "{names:?}");
    let mounts = d.mounts_under();
    assert!(mounts.is_empty(), "a temporary mount is left: {mounts:?}");
    // Running, to stdout.
    d.ok(&["run", "-d", "--name", "e2", "bb:local", "sleep", "1000"]);
    let out = d.docker(&["export", "e2"]);
    assert!(out.status.success());
    std::fs::write(dir.join("e2.tar"), &out.stdout).unwrap();
    let names = tar_list(&dir.join("e2.tar"));
    assert!(names.iter().any(|n| n == "bin/busybox"), "{names:?}");
    assert!(!names.iter().any(|n| n.starts_with("proc/1")), "{names:?}");
}

#[test]
fn cp_in_and_out_of_running_and_stopped_containers() {
    if skip() {
        return;
    }
    let d = Daemon::start();
    d.busybox("bb:local");
    let host = scratch(&d, "cp");
    d.ok(&["run", "-d", "--name", "c1", "bb:local", "sleep", "1000"]);

    // A file in, renamed; then out again.
    std::fs::write(host.join("hostfile.txt"), "from the host\n").unwrap();
    d.ok(&["cp", s(&host.join("hostfile.txt")), "c1:/tmp/in.txt"]);
    assert_eq!(
        d.ok(&["exec", "c1", "cat", "/tmp/in.txt"]),
        "from the host\n"
    );
    assert_eq!(
        d.ok(&["exec", "c1", "stat", "-c", "%u:%g", "/tmp/in.txt"]),
        "0:0\n"
    );
    let out = scratch(&d, "cp-out");
    d.ok(&["cp", "c1:/tmp/in.txt", &format!("{}/", s(&out))]);
    assert_eq!(
        std::fs::read_to_string(out.join("in.txt")).unwrap(),
        "from the host\n"
    );

    // A directory in (into an existing directory) and out.
    let tree = host.join("tree");
    std::fs::create_dir_all(tree.join("sub")).unwrap();
    std::fs::write(tree.join("sub/deep.txt"), "deep\n").unwrap();
    std::os::unix::fs::symlink("sub/deep.txt", tree.join("link")).unwrap();
    d.ok(&["cp", s(&tree), "c1:/tmp/"]);
    assert_eq!(
        d.ok(&["exec", "c1", "cat", "/tmp/tree/sub/deep.txt"]),
        "deep\n"
    );
    assert_eq!(
        d.ok(&["exec", "c1", "readlink", "/tmp/tree/link"]),
        "sub/deep.txt\n"
    );
    d.ok(&["cp", "c1:/tmp/tree", s(&out.join("tree-back"))]);
    assert_eq!(
        std::fs::read_to_string(out.join("tree-back/sub/deep.txt")).unwrap(),
        "deep\n"
    );
    assert_eq!(
        std::fs::read_link(out.join("tree-back/link")).unwrap(),
        Path::new("sub/deep.txt")
    );

    // A directory to stdout: a tar whose top entry is the directory's name.
    let o = d.docker(&["cp", "c1:/etc", "-"]);
    assert!(o.status.success(), "{:?}", text(&o));
    std::fs::write(out.join("etc.tar"), &o.stdout).unwrap();
    let names = tar_list(&out.join("etc.tar"));
    assert_eq!(names[0], "etc/", "{names:?}");
    assert!(names.iter().any(|n| n == "etc/passwd"), "{names:?}");

    // Out of a stopped container.
    d.ok(&[
        "run",
        "--name",
        "c2",
        "bb:local",
        "sh",
        "-c",
        "echo from-stopped > /f",
    ]);
    d.ok(&["cp", "c2:/f", s(&out.join("f"))]);
    assert_eq!(
        std::fs::read_to_string(out.join("f")).unwrap(),
        "from-stopped\n"
    );

    // Into a container that never ran, which then reads it.
    d.ok(&["create", "--name", "c3", "bb:local", "cat", "/incoming"]);
    d.ok(&["cp", s(&host.join("hostfile.txt")), "c3:/incoming"]);
    assert_eq!(d.ok(&["start", "-a", "c3"]), "from the host\n");

    // A missing path, as docker words it.
    let o = d.docker(&["cp", "c1:/nope", s(&out)]);
    assert!(!o.status.success());
    assert!(
        text(&o)
            .1
            .contains("Could not find the file /nope in container c1"),
        "{:?}",
        text(&o)
    );
    let o = d.docker(&["cp", s(&host.join("hostfile.txt")), "c1:/no/such/dir/x"]);
    assert!(!o.status.success(), "{:?}", text(&o));

    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap();
    let c2 = d.ok(&["inspect", "-f", "{{.Id}}", "c2"]);
    assert!(!mounts.contains(c2.trim()), "c2's rootfs is left mounted");
}

#[test]
fn cp_sees_the_volumes_and_binds_of_a_running_container() {
    if skip() {
        return;
    }
    let d = Daemon::start();
    d.busybox("bb:local");
    let host = scratch(&d, "binds");
    std::fs::write(host.join("on-host.txt"), "bound\n").unwrap();
    d.ok(&[
        "run",
        "-d",
        "--name",
        "v1",
        "-v",
        "cpvol:/data",
        "-v",
        &format!("{}:/bind", s(&host)),
        "bb:local",
        "sleep",
        "1000",
    ]);
    // Into the named volume: the container sees it, and so does a second container.
    let file = scratch(&d, "in").join("to-volume.txt");
    std::fs::write(&file, "into the volume\n").unwrap();
    d.ok(&["cp", s(&file), "v1:/data/"]);
    assert_eq!(
        d.ok(&["exec", "v1", "cat", "/data/to-volume.txt"]),
        "into the volume\n"
    );
    assert_eq!(
        d.ok(&[
            "run",
            "--rm",
            "-v",
            "cpvol:/v",
            "bb:local",
            "cat",
            "/v/to-volume.txt"
        ]),
        "into the volume\n"
    );
    // Out of the bind mount and out of the container's own /etc/hostname.
    let out = scratch(&d, "out");
    d.ok(&["cp", "v1:/bind/on-host.txt", &format!("{}/", s(&out))]);
    assert_eq!(
        std::fs::read_to_string(out.join("on-host.txt")).unwrap(),
        "bound\n"
    );
    d.ok(&["cp", "v1:/etc/hostname", &format!("{}/", s(&out))]);
    let id = d.ok(&["inspect", "-f", "{{.Id}}", "v1"]);
    assert_eq!(
        std::fs::read_to_string(out.join("hostname"))
            .unwrap()
            .trim(),
        &id.trim()[..12]
    );
}

#[test]
fn cp_through_a_symlink_to_the_host_stays_in_the_container() {
    if skip() {
        return;
    }
    let d = Daemon::start();
    d.busybox("bb:local");
    let host = scratch(&d, "sym");
    let secret = format!("/tmp/berth-host-only-{}", std::process::id());
    std::fs::write(&secret, "host secret\n").unwrap();
    let planted = format!("/etc/berth-cp-escape-{}", std::process::id());
    let _ = std::fs::remove_file(&planted);
    // Links that point to the host's /etc and to a file only the host has, absolutely and
    // through `..`; put in with `docker cp` (a stopped container), as a tar of symlinks.
    let links = scratch(&d, "links");
    std::os::unix::fs::symlink("/etc", links.join("hostetc")).unwrap();
    std::os::unix::fs::symlink("../../../../../../etc", links.join("reletc")).unwrap();
    std::os::unix::fs::symlink(&secret, links.join("secret")).unwrap();
    std::fs::write(links.join("marker"), "container\n").unwrap();
    d.ok(&["create", "--name", "l1", "bb:local", "sleep", "1000"]);
    d.ok(&["cp", &format!("{}/.", s(&links)), "l1:/"]);
    d.ok(&["cp", s(&links.join("marker")), "l1:/etc/marker"]);
    let out = scratch(&d, "sym-out");
    d.ok(&["cp", "l1:/hostetc/marker", s(&out.join("m1"))]);
    assert_eq!(
        std::fs::read_to_string(out.join("m1")).unwrap(),
        "container\n"
    );
    d.ok(&["cp", "l1:/reletc/marker", s(&out.join("m2"))]);
    assert_eq!(
        std::fs::read_to_string(out.join("m2")).unwrap(),
        "container\n"
    );
    // The host's file is not reachable.
    let o = d.docker(&["cp", "-L", "l1:/secret", s(&out.join("secret"))]);
    assert!(!o.status.success(), "{:?}", text(&o));
    assert!(!out.join("secret").exists());
    // The link itself is copied as a link.
    d.ok(&["cp", "l1:/secret", s(&out.join("link"))]);
    assert_eq!(
        std::fs::read_link(out.join("link")).unwrap(),
        Path::new(&secret)
    );

    // Into the container's /etc through the link, not the host's, running and stopped.
    let name = Path::new(&planted).file_name().unwrap().to_str().unwrap();
    std::fs::write(host.join(name), "planted\n").unwrap();
    d.ok(&["cp", s(&host.join(name)), "l1:/hostetc/"]);
    d.ok(&["cp", s(&host.join(name)), "l1:/reletc/"]);
    assert!(
        !Path::new(&planted).exists(),
        "cp wrote the host's {planted}"
    );
    d.ok(&["cp", &format!("l1:/etc/{name}"), s(&out.join("planted"))]);
    assert_eq!(
        std::fs::read_to_string(out.join("planted")).unwrap(),
        "planted\n"
    );
    d.ok(&["start", "l1"]);
    d.ok(&["create", "--name", "l2", "bb:local", "sleep", "1000"]);
    d.ok(&["cp", &format!("{}/.", s(&links)), "l2:/"]);
    d.ok(&["start", "l2"]);
    d.ok(&["cp", s(&host.join(name)), "l2:/hostetc/"]);
    assert!(
        !Path::new(&planted).exists(),
        "cp wrote the host's {planted}"
    );
    assert_eq!(
        d.ok(&["exec", "l2", "cat", &format!("/etc/{name}")]),
        "planted\n"
    );
    let _ = std::fs::remove_file(&secret);
}

#[test]
fn commit_makes_an_image_with_the_changes() {
    if skip() {
        return;
    }
    let d = Daemon::start();
    d.busybox("bb:local");
    d.ok(&[
        "run",
        "--name",
        "m1",
        "bb:local",
        "sh",
        "-c",
        "echo committed > /x",
    ]);
    let id = d.ok(&[
        "commit",
        "-c",
        r#"CMD ["cat","/x"]"#,
        "-c",
        "ENV COMMITTED=yes",
        "-m",
        "a message",
        "m1",
        "img:new",
    ]);
    assert!(id.trim().starts_with("sha256:"), "{id}");
    assert_eq!(d.ok(&["run", "--rm", "img:new"]), "committed\n");
    assert_eq!(
        d.ok(&["run", "--rm", "img:new", "sh", "-c", "echo $COMMITTED"]),
        "yes\n"
    );
    let cmd = d.ok(&["image", "inspect", "-f", "{{json .Config.Cmd}}", "img:new"]);
    assert_eq!(cmd.trim(), r#"["cat","/x"]"#);

    // A running container (paused for the commit), its image run again.
    d.ok(&[
        "run",
        "-d",
        "--name",
        "m2",
        "bb:local",
        "sh",
        "-c",
        "echo live > /y; sleep 1000",
    ]);
    std::thread::sleep(std::time::Duration::from_millis(300));
    d.ok(&["commit", "m2", "img:live"]);
    assert_eq!(
        d.ok(&["inspect", "-f", "{{.State.Status}}", "m2"]).trim(),
        "running"
    );
    assert_eq!(d.ok(&["run", "--rm", "img:live", "cat", "/y"]), "live\n");

    let o = d.docker(&["commit", "-c", "RUN true", "m1", "img:bad"]);
    assert!(!o.status.success());
}

#[test]
fn cp_into_a_container_reads_the_whole_body_before_answering() {
    if skip() {
        return;
    }
    let d = Daemon::start();
    d.busybox("busybox");
    d.ok(&["run", "-d", "--name", "target", "busybox", "sleep", "300"]);
    d.ok(&[
        "run",
        "-d",
        "--read-only",
        "--name",
        "readonly",
        "busybox",
        "sleep",
        "300",
    ]);
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("big");
    std::fs::write(&big, vec![b'x'; 32 << 20]).unwrap();
    let src = big.to_str().unwrap();
    for round in 0..3 {
        // An error found before the first byte is read (a read-only rootfs): the answer must
        // still come after the body.
        let out = d.docker(&["cp", src, "readonly:/tmp/"]);
        let (stdout, stderr) = text(&out);
        assert!(!out.status.success(), "round {round}");
        assert!(
            !stderr.contains("broken pipe"),
            "round {round}: {stdout}{stderr}"
        );
        assert!(
            stderr.contains("read-only"),
            "round {round}: {stdout}{stderr}"
        );
        // And a copy that works.
        d.ok(&["cp", src, "target:/tmp/big"]);
    }
    let size = d.ok(&["exec", "target", "stat", "-c", "%s", "/tmp/big"]);
    assert_eq!(size.trim(), (32 << 20).to_string());
}

#[test]
fn docker_diff_lists_what_the_container_added_changed_and_deleted() {
    if skip() {
        return;
    }
    let d = Daemon::start();
    d.busybox("busybox");
    d.ok(&["create", "--name", "differ", "busybox", "sh", "-c",
        "touch /newfile && echo x >> /etc/passwd && rm /bin/ls && mkdir -p /a/b && touch /a/b/c && rm -r /home && mkdir /home && echo y > /home/only"]);
    // Never started: nothing changed.
    assert_eq!(d.ok(&["diff", "differ"]), "");
    d.ok(&["start", "-a", "differ"]);
    assert_eq!(
        d.ok(&["diff", "differ"]),
        "A /a\nA /a/b\nA /a/b/c\nC /bin\nD /bin/ls\nC /etc\nC /etc/passwd\nC /home\nA /home/only\nA /newfile\n"
    );
    // The same through the API's kinds (0 C, 1 A, 2 D), for the Python SDK.
    let out = common::python_sdk(
        &d,
        "import docker\nc = docker.from_env().containers.get('differ')\n\
         print(sorted((x['Kind'], x['Path']) for x in c.diff())[:3])\n",
    );
    assert_eq!(out, "[(0, '/bin'), (0, '/etc'), (0, '/etc/passwd')]\n");
    let out = d.docker(&["diff", "nosuch"]);
    assert!(
        text(&out).1.contains("No such container: nosuch"),
        "{out:?}"
    );
}

/// `docker start` straight after a `docker cp` out of the stopped container: the copy's
/// temporary mount of the root, released once its streamed answer has ended, must not take
/// the start's mount with it (the container then found no `sleep`: its root was an empty
/// directory).
#[test]
fn start_right_after_cp_out_of_a_stopped_container_keeps_its_root() {
    if skip() {
        return;
    }
    let d = Daemon::start();
    d.busybox("bb:local");
    let dir = scratch(&d, "cp-start");
    std::fs::write(dir.join("f"), "x\n").unwrap();
    d.ok(&["create", "--name", "cs", "bb:local", "sleep", "1000"]);
    d.ok(&["cp", s(&dir.join("f")), "cs:/f"]);
    for round in 0..40 {
        d.ok(&["cp", "cs:/f", s(&dir.join(format!("out{round}")))]);
        let out = d.docker(&["start", "cs"]);
        assert!(out.status.success(), "round {round}: {:?}", text(&out));
        d.ok(&["exec", "cs", "cat", "/f"]);
        d.ok(&["kill", "cs"]);
    }
}
