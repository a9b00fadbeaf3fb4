#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions unwrap too

//! Named volumes through the real docker CLI: create with labels, ls with filters, inspect,
//! data kept across containers, rm refused while in use, prune of anonymous volumes only
//! unless `--all`, bind-backed volumes, the copy of the image's files into an empty volume,
//! anonymous volumes (`-v /path`, the image's `VOLUME`), `Mounts` in inspect, and Docker's
//! errors with nothing changed.

mod common;

use common::{skip, text, Daemon};

#[test]
fn volumes_are_created_listed_used_and_removed_as_dockers() {
    if skip() {
        return;
    }
    let d = Daemon::start();
    d.busybox("bb");

    assert_eq!(
        d.ok(&["volume", "create", "--label", "team=a", "v1"])
            .trim(),
        "v1"
    );
    // Creating it again gives the same volume back.
    assert_eq!(d.ok(&["volume", "create", "v1"]).trim(), "v1");
    d.ok(&["volume", "create", "v2"]);
    let inspect = d.ok(&[
        "volume",
        "inspect",
        "-f",
        "{{.Name}} {{.Driver}} {{.Scope}} {{.Labels.team}} {{.Mountpoint}}",
        "v1",
    ]);
    let fields: Vec<&str> = inspect.split_whitespace().collect();
    assert_eq!(&fields[..4], ["v1", "local", "local", "a"], "{inspect}");
    assert!(fields[4].ends_with("/volumes/v1/_data"), "{inspect}");
    let labelled = d.ok(&["volume", "ls", "-q", "--filter", "label=team=a"]);
    assert_eq!(labelled.trim(), "v1");

    // Data written by one container is read by the next.
    d.ok(&[
        "run",
        "--rm",
        "-v",
        "v1:/d",
        "bb",
        "sh",
        "-c",
        "echo kept > /d/f",
    ]);
    let read = d.ok(&["run", "--rm", "-v", "v1:/d:ro", "bb", "cat", "/d/f"]);
    assert_eq!(read.trim(), "kept");

    // In use by a container (even a stopped one): rm refused, data intact.
    d.ok(&["create", "--name", "user", "-v", "v1:/d", "bb", "true"]);
    let out = d.docker(&["volume", "rm", "v1"]);
    let (_, err) = text(&out);
    assert!(!out.status.success());
    assert!(
        err.contains("remove v1: volume is in use - ["),
        "unexpected error: {err}"
    );
    let dangling = d.ok(&["volume", "ls", "-q", "--filter", "dangling=true"]);
    assert_eq!(dangling.trim(), "v2");

    // Errors: unknown volume, bad name, unknown driver; nothing else changes.
    let out = d.docker(&["volume", "inspect", "nope"]);
    assert!(text(&out).1.contains("no such volume"), "{}", text(&out).1);
    let out = d.docker(&["volume", "rm", "nope"]);
    assert!(text(&out).1.contains("no such volume"), "{}", text(&out).1);
    let out = d.docker(&["volume", "create", "bad/name"]);
    assert!(
        text(&out).1.contains("includes invalid characters"),
        "{}",
        text(&out).1
    );
    let out = d.docker(&["volume", "create", "-d", "nfs-plugin", "x"]);
    assert!(
        text(&out).1.contains("plugin \"nfs-plugin\" not found"),
        "{}",
        text(&out).1
    );
    let names = d.ok(&["volume", "ls", "-q"]);
    assert_eq!(names.split_whitespace().collect::<Vec<_>>(), ["v1", "v2"]);

    // prune: only anonymous volumes, unless --all; in-use ones are kept either way.
    d.ok(&["volume", "create"]);
    let pruned = d.ok(&["volume", "prune", "-f"]);
    assert!(pruned.contains("Deleted Volumes:"), "{pruned}");
    let names = d.ok(&["volume", "ls", "-q"]);
    assert_eq!(names.split_whitespace().collect::<Vec<_>>(), ["v1", "v2"]);
    d.ok(&["volume", "prune", "-f", "--all"]);
    let names = d.ok(&["volume", "ls", "-q"]);
    assert_eq!(names.trim(), "v1");

    d.ok(&["rm", "user"]);
    d.ok(&["volume", "rm", "v1"]);
    assert_eq!(d.ok(&["volume", "ls", "-q"]).trim(), "");
}

#[test]
fn a_bind_backed_volume_mounts_its_device() {
    if skip() {
        return;
    }
    let d = Daemon::start();
    d.busybox("bb");
    let host = tempfile::tempdir().unwrap();
    std::fs::write(host.path().join("from-host"), "on the host\n").unwrap();
    let device = format!("device={}", host.path().display());
    d.ok(&[
        "volume",
        "create",
        "-o",
        "type=none",
        "-o",
        "o=bind",
        "-o",
        &device,
        "hostdir",
    ]);
    let read = d.ok(&[
        "run",
        "--rm",
        "-v",
        "hostdir:/d",
        "bb",
        "sh",
        "-c",
        "cat /d/from-host; echo back > /d/from-ctr",
    ]);
    assert_eq!(read.trim(), "on the host");
    assert_eq!(
        std::fs::read_to_string(host.path().join("from-ctr")).unwrap(),
        "back\n"
    );
    let options = d.ok(&["volume", "inspect", "-f", "{{.Options.o}}", "hostdir"]);
    assert_eq!(options.trim(), "bind");

    // A device that does not exist, or another mount type: refused, nothing made.
    let out = d.docker(&[
        "volume",
        "create",
        "-o",
        "type=none",
        "-o",
        "o=bind",
        "-o",
        "device=/nonexistent/dir",
        "bad1",
    ]);
    assert!(!out.status.success());
    assert!(
        text(&out).1.contains("no such file or directory"),
        "{}",
        text(&out).1
    );
    let out = d.docker(&["volume", "create", "-o", "type=nfs", "bad2"]);
    assert!(!out.status.success());
    assert_eq!(d.ok(&["volume", "ls", "-q"]).trim(), "hostdir");
    // Removing the volume leaves the host directory alone.
    d.ok(&["volume", "rm", "hostdir"]);
    assert!(host.path().join("from-host").exists());
}

#[test]
fn an_empty_volume_gets_the_images_files_on_first_mount() {
    if skip() {
        return;
    }
    let d = Daemon::start();
    d.busybox("bb");
    d.ok(&[
        "run",
        "--name",
        "mk",
        "bb",
        "sh",
        "-c",
        "mkdir -p /seed/sub && echo seeded > /seed/sub/f && chown -R 1000:1000 /seed && chmod 750 /seed",
    ]);
    d.ok(&["commit", "mk", "seeded"]);

    // First mount of an empty volume: the image's files, owners and mode are copied in.
    let out = d.ok(&[
        "run",
        "--rm",
        "-v",
        "cv:/seed",
        "seeded",
        "sh",
        "-c",
        "cat /seed/sub/f; stat -c '%u %a' /seed /seed/sub/f",
    ]);
    assert_eq!(out, "seeded\n1000 750\n1000 644\n");
    let data = d.ok(&["volume", "inspect", "-f", "{{.Mountpoint}}", "cv"]);
    assert_eq!(
        std::fs::read_to_string(std::path::Path::new(data.trim()).join("sub/f")).unwrap(),
        "seeded\n"
    );
    // Not again: what the volume holds now is what the next container sees.
    d.ok(&[
        "run",
        "--rm",
        "-v",
        "cv:/seed",
        "seeded",
        "sh",
        "-c",
        "rm -r /seed/sub; echo mine > /seed/own",
    ]);
    let out = d.ok(&["run", "--rm", "-v", "cv:/seed", "seeded", "ls", "/seed"]);
    assert_eq!(out, "own\n");
    // `nocopy`, and a bind-backed volume: nothing copied.
    let out = d.ok(&[
        "run",
        "--rm",
        "-v",
        "cv2:/seed:nocopy",
        "seeded",
        "ls",
        "-A",
        "/seed",
    ]);
    assert_eq!(out, "");
    let host = tempfile::tempdir().unwrap();
    let device = format!("device={}", host.path().display());
    d.ok(&[
        "volume",
        "create",
        "-o",
        "type=none",
        "-o",
        "o=bind",
        "-o",
        &device,
        "hb",
    ]);
    let out = d.ok(&[
        "run", "--rm", "-v", "hb:/seed", "seeded", "ls", "-A", "/seed",
    ]);
    assert_eq!(out, "");
    assert_eq!(std::fs::read_dir(host.path()).unwrap().count(), 0);

    // inspect's Mounts: the volume and a bind, as dockerd lists them (by target: the docker
    // CLI sends its binds in a random order).
    let bind = host.path().display().to_string();
    d.ok(&[
        "create",
        "--name",
        "mm",
        "-v",
        "cv:/seed:ro",
        "-v",
        &format!("{bind}:/host"),
        "seeded",
        "true",
    ]);
    let mounts = d.ok(&[
        "inspect",
        "-f",
        "{{range .Mounts}}{{.Type}} {{.Name}} {{.Source}} {{.Destination}} {{.RW}}|{{end}}",
        "mm",
    ]);
    assert_eq!(
        mounts.trim(),
        format!(
            "bind  {bind} /host true|volume cv {} /seed false|",
            data.trim()
        )
    );
}

#[test]
fn anonymous_volumes_are_made_for_v_path_and_image_volumes_and_go_with_rm_v() {
    if skip() {
        return;
    }
    let d = Daemon::start();
    d.busybox("bb");
    let volumes = || {
        let out = d.ok(&["volume", "ls", "-q"]);
        out.split_whitespace()
            .map(str::to_string)
            .collect::<Vec<_>>()
    };

    // `-v /data`: a volume of its own, listed in Mounts, kept by `rm` and taken by prune.
    d.ok(&[
        "run",
        "-d",
        "--name",
        "av",
        "-v",
        "/data",
        "bb",
        "sh",
        "-c",
        "echo kept > /data/f; sleep 300",
    ]);
    let mounts = d.ok(&[
        "inspect",
        "-f",
        "{{range .Mounts}}{{.Type}} {{.Name}} {{.Destination}}{{end}}",
        "av",
    ]);
    let fields: Vec<&str> = mounts.split_whitespace().collect();
    assert_eq!(fields.len(), 3, "{mounts}");
    assert_eq!((fields[0], fields[2]), ("volume", "/data"));
    assert_eq!(fields[1].len(), 64, "{mounts}");
    assert_eq!(volumes(), [fields[1]]);
    d.ok(&["rm", "-f", "av"]);
    assert_eq!(volumes(), [fields[1]]);
    d.ok(&["volume", "prune", "-f"]);
    assert!(volumes().is_empty());

    // `rm -v` and `--rm` take them along.
    d.ok(&["create", "--name", "cv", "-v", "/x", "bb", "true"]);
    assert_eq!(volumes().len(), 1);
    d.ok(&["rm", "-v", "cv"]);
    assert!(volumes().is_empty());
    d.ok(&["run", "--rm", "-v", "/x", "bb", "true"]);
    assert!(volumes().is_empty());

    // An image's VOLUME: an anonymous volume with the image's files in it; a bind on the same
    // path takes its place.
    d.ok(&[
        "run",
        "--name",
        "mk",
        "bb",
        "sh",
        "-c",
        "mkdir /seed && echo from-image > /seed/f",
    ]);
    d.ok(&["commit", "--change", "VOLUME /seed", "mk", "withvol"]);
    d.ok(&["rm", "mk"]);
    d.ok(&["run", "-d", "--name", "iv", "withvol", "sleep", "300"]);
    let out = d.ok(&["exec", "iv", "cat", "/seed/f"]);
    assert_eq!(out, "from-image\n");
    let name = d.ok(&["inspect", "-f", "{{range .Mounts}}{{.Name}}{{end}}", "iv"]);
    assert_eq!(volumes(), [name.trim()]);
    let host = tempfile::tempdir().unwrap();
    let bind = format!("{}:/seed", host.path().display());
    let out = d.ok(&["run", "--rm", "-v", &bind, "withvol", "ls", "-A", "/seed"]);
    assert_eq!(out, "");
    assert_eq!(volumes(), [name.trim()]);
    d.ok(&["rm", "-fv", "iv"]);
    assert!(volumes().is_empty());
}
