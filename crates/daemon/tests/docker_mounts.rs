#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions unwrap too

//! `--mount` (`HostConfig.Mounts`) through the real docker CLI and through `berth`: volumes
//! whose data outlives the container, binds of host directories (read-only, non-recursive,
//! propagation), tmpfs mounts with their size and mode, `nocopy`, subpaths, anonymous volumes
//! gone with `rm -v`; the create-time checks of binds and mounts with dockerd's 400 errors and
//! nothing stored; `Duplicate mount point`; inspect's `Mounts` and `HostConfig.Mounts`, ps's
//! `Mounts`.

mod common;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use common::{skip, text, Daemon};
use serde_json::{json, Value};

/// `docker ARGS` that must fail: its stderr, which must hold `expected`.
fn fails(d: &Daemon, args: &[&str], expected: &str) -> String {
    check_failed(&d.docker(args), args, expected)
}

/// `berth ARGS` that must fail with status 125 and `expected` in its stderr.
fn berth_fails(d: &Daemon, args: &[&str], expected: &str) -> String {
    let out = d.berth(args);
    assert_eq!(
        out.status.code(),
        Some(125),
        "berth {args:?}: {}",
        text(&out).1
    );
    check_failed(&out, args, expected)
}

fn check_failed(out: &Output, args: &[&str], expected: &str) -> String {
    let (stdout, stderr) = text(out);
    assert!(
        !out.status.success(),
        "{args:?} succeeded: {stdout}{stderr}"
    );
    assert!(
        stderr.contains(expected),
        "{args:?}: {stderr:?} does not hold {expected:?}"
    );
    stderr
}

/// `berth ARGS`, which must succeed; its stdout.
fn berth_ok(d: &Daemon, args: &[&str]) -> String {
    let out = d.berth(args);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "berth {args:?}: {stdout}{stderr}");
    stdout
}

fn lines(s: &str) -> Vec<String> {
    let mut v: Vec<String> = s.split_whitespace().map(str::to_string).collect();
    v.sort();
    v
}

/// Host mounts a test makes, unmounted (deepest first) when it ends, also when it fails.
struct HostMounts(Vec<PathBuf>);

impl HostMounts {
    fn mount(&mut self, args: &[&str], target: &Path) {
        let status = std::process::Command::new("mount")
            .args(args)
            .arg(target)
            .status()
            .unwrap();
        assert!(status.success(), "mount {args:?} {}", target.display());
        self.0.push(target.to_path_buf());
    }
}

impl Drop for HostMounts {
    fn drop(&mut self) {
        for p in self.0.iter().rev() {
            let _ = nix::mount::umount2(p, nix::mount::MntFlags::MNT_DETACH);
        }
    }
}

/// One answer of the API, read from a raw HTTP/1.1 request on the socket (20 s at most).
fn api(d: &Daemon, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
    let mut s = UnixStream::connect(&d.socket).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let body = body
        .map(|b| serde_json::to_vec(b).unwrap())
        .unwrap_or_default();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(&body).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&raw[..end]).to_lowercase();
    let status: u16 = head.split(' ').nth(1).unwrap().parse().unwrap();
    let mut payload = raw[end + 4..].to_vec();
    if head.contains("transfer-encoding: chunked") {
        let mut out = Vec::new();
        let mut rest = payload.as_slice();
        while let Some(nl) = rest.windows(2).position(|w| w == b"\r\n") {
            let size = usize::from_str_radix(std::str::from_utf8(&rest[..nl]).unwrap().trim(), 16)
                .unwrap();
            if size == 0 {
                break;
            }
            out.extend_from_slice(&rest[nl + 2..nl + 2 + size]);
            rest = &rest[nl + 2 + size + 2..];
        }
        payload = out;
    }
    (
        status,
        serde_json::from_slice(&payload).unwrap_or(Value::Null),
    )
}

/// Creates a container from `host_config` by the API: it must be refused with 400 and
/// `message`, and leave no container and no volume behind.
fn refused(d: &Daemon, host_config: Value, message: &str) {
    let containers = d.ok(&["ps", "-aq"]);
    let volumes = d.ok(&["volume", "ls", "-q"]);
    let body = json!({"Image": "bb", "Cmd": ["true"], "HostConfig": host_config});
    let (status, answer) = api(
        d,
        "POST",
        "/v1.43/containers/create?name=refused",
        Some(&body),
    );
    assert_eq!(
        (status, answer["message"].as_str().unwrap_or_default()),
        (400, message),
        "{body}"
    );
    assert_eq!(d.ok(&["ps", "-aq"]), containers, "{body}");
    assert_eq!(d.ok(&["volume", "ls", "-q"]), volumes, "{body}");
}

#[test]
fn a_volume_mount_keeps_its_data_for_the_next_container() {
    if skip() {
        return;
    }
    let d = Daemon::start();
    d.busybox("bb");

    // Written through --mount, kept by `rm`, read by the next container.
    d.ok(&[
        "run",
        "--name",
        "writer",
        "--mount",
        "type=volume,source=data,target=/x",
        "bb",
        "sh",
        "-c",
        "echo kept > /x/f",
    ]);
    d.ok(&["rm", "writer"]);
    let read = d.ok(&[
        "run",
        "--rm",
        "--mount",
        "source=data,target=/y",
        "bb",
        "cat",
        "/y/f",
    ]);
    assert_eq!(read, "kept\n");
    assert_eq!(d.ok(&["volume", "ls", "-q"]).trim(), "data");

    // The same through berth, both ways.
    assert_eq!(
        berth_ok(
            &d,
            &[
                "run",
                "--rm",
                "--mount",
                "src=data,dst=/z",
                "bb",
                "cat",
                "/z/f"
            ]
        ),
        "kept\n"
    );
    berth_ok(
        &d,
        &[
            "run",
            "--name",
            "bw",
            "--mount",
            "type=volume,source=data,destination=/x",
            "bb",
            "sh",
            "-c",
            "echo again >> /x/f",
        ],
    );
    berth_ok(&d, &["rm", "bw"]);
    let read = d.ok(&[
        "run",
        "--rm",
        "--mount",
        "source=data,target=/y",
        "bb",
        "cat",
        "/y/f",
    ]);
    assert_eq!(read, "kept\nagain\n");

    // Read-only: reads, refuses writes.
    fails(
        &d,
        &[
            "run",
            "--rm",
            "--mount",
            "source=data,target=/y,readonly",
            "bb",
            "sh",
            "-c",
            "cat /y/f >&2; touch /y/new",
        ],
        "Read-only file system",
    );
    let out = d.berth(&[
        "run",
        "--rm",
        "--mount",
        "source=data,target=/y,ro=true",
        "bb",
        "touch",
        "/y/new",
    ]);
    assert!(!out.status.success());
    assert!(
        text(&out).1.contains("Read-only file system"),
        "{}",
        text(&out).1
    );

    // A volume a mount makes gets the mount's labels; an existing one keeps its own.
    d.ok(&[
        "run",
        "--rm",
        "--mount",
        "source=labelled,target=/x,volume-label=team=a,volume-label=tier=db",
        "bb",
        "true",
    ]);
    d.ok(&[
        "run",
        "--rm",
        "--mount",
        "source=labelled,target=/x,volume-label=team=b",
        "bb",
        "true",
    ]);
    let labels = d.ok(&[
        "volume",
        "inspect",
        "-f",
        "{{.Labels.team}} {{.Labels.tier}}",
        "labelled",
    ]);
    assert_eq!(labels.trim(), "a db");

    // Driver options are `volume create -o`: a bind-backed volume of a host directory.
    let host = tempfile::tempdir().unwrap();
    let device = format!("volume-opt=device={}", host.path().display());
    d.ok(&[
        "run",
        "--rm",
        "--mount",
        &format!("source=hostvol,target=/x,volume-driver=local,volume-opt=type=none,volume-opt=o=bind,{device}"),
        "bb",
        "sh",
        "-c",
        "echo to-host > /x/f",
    ]);
    assert_eq!(
        std::fs::read_to_string(host.path().join("f")).unwrap(),
        "to-host\n"
    );
    let options = d.ok(&[
        "volume",
        "inspect",
        "-f",
        "{{.Options.type}} {{.Options.o}}",
        "hostvol",
    ]);
    assert_eq!(options.trim(), "none bind");

    // In use by a stopped container through --mount: `volume rm` refused.
    d.ok(&[
        "create",
        "--name",
        "user",
        "--mount",
        "source=data,target=/x",
        "bb",
        "true",
    ]);
    fails(
        &d,
        &["volume", "rm", "data"],
        "remove data: volume is in use - [",
    );
    d.ok(&["rm", "user"]);
    d.ok(&["volume", "rm", "data", "labelled", "hostvol"]);
    assert_eq!(d.ok(&["volume", "ls", "-q"]).trim(), "");
    assert!(host.path().join("f").exists());
}

#[test]
fn a_bind_mount_shows_the_hosts_directory_with_its_options() {
    if skip() {
        return;
    }
    let d = Daemon::start();
    d.busybox("bb");
    let host = tempfile::tempdir().unwrap();
    let dir = host.path().join("shared");
    std::fs::create_dir_all(dir.join("sub")).unwrap();
    std::fs::write(dir.join("from-host"), "on the host\n").unwrap();
    let src = dir.display().to_string();

    let out = d.ok(&[
        "run",
        "--rm",
        "--mount",
        &format!("type=bind,source={src},target=/h"),
        "bb",
        "sh",
        "-c",
        "cat /h/from-host; echo back > /h/from-ctr",
    ]);
    assert_eq!(out, "on the host\n");
    assert_eq!(
        std::fs::read_to_string(dir.join("from-ctr")).unwrap(),
        "back\n"
    );
    let out = berth_ok(
        &d,
        &[
            "run",
            "--rm",
            "--mount",
            &format!("type=bind,src={src},dst=/h"),
            "bb",
            "cat",
            "/h/from-ctr",
        ],
    );
    assert_eq!(out, "back\n");

    // Read-only.
    fails(
        &d,
        &[
            "run",
            "--rm",
            "--mount",
            &format!("type=bind,src={src},dst=/h,ro"),
            "bb",
            "touch",
            "/h/x",
        ],
        "Read-only file system",
    );
    assert!(!dir.join("x").exists());

    // Recursive by default; `bind-recursive=disabled` leaves the mounts below out.
    let mut mounts = HostMounts(Vec::new());
    mounts.mount(&["-t", "tmpfs", "-o", "size=1m", "tmpfs"], &dir.join("sub"));
    std::fs::write(dir.join("sub/on-tmpfs"), "below\n").unwrap();
    let out = d.ok(&[
        "run",
        "--rm",
        "--mount",
        &format!("type=bind,src={src},dst=/h"),
        "bb",
        "cat",
        "/h/sub/on-tmpfs",
    ]);
    assert_eq!(out, "below\n");
    let out = d.ok(&[
        "run",
        "--rm",
        "--mount",
        &format!("type=bind,src={src},dst=/h,bind-recursive=disabled"),
        "bb",
        "ls",
        "-A",
        "/h/sub",
    ]);
    assert_eq!(out, "");
    let out = berth_ok(
        &d,
        &[
            "run",
            "--rm",
            "--mount",
            &format!("type=bind,src={src},dst=/h,bind-recursive=disabled"),
            "bb",
            "ls",
            "-A",
            "/h/sub",
        ],
    );
    assert_eq!(out, "");

    // Shared propagation needs a shared host mount; with one, a mount made on the host
    // later shows inside.
    fails(
        &d,
        &[
            "run",
            "--rm",
            "--mount",
            &format!("type=bind,src={src},dst=/h,bind-propagation=rshared"),
            "bb",
            "true",
        ],
        &format!("path {src} is mounted on "),
    );
    mounts.mount(&["--bind", &src], &dir);
    mounts.mount(&["--make-shared"], &dir);
    d.ok(&[
        "run",
        "-d",
        "--name",
        "prop",
        "--mount",
        &format!("type=bind,src={src},dst=/h,bind-propagation=rshared"),
        "bb",
        "sleep",
        "300",
    ]);
    std::fs::create_dir_all(dir.join("late")).unwrap();
    mounts.mount(
        &["-t", "tmpfs", "-o", "size=1m", "tmpfs"],
        &dir.join("late"),
    );
    std::fs::write(dir.join("late/l"), "propagated\n").unwrap();
    assert_eq!(d.ok(&["exec", "prop", "cat", "/h/late/l"]), "propagated\n");
    let prop = d.ok(&[
        "inspect",
        "-f",
        "{{range .Mounts}}{{.Propagation}}{{end}}",
        "prop",
    ]);
    assert_eq!(prop.trim(), "rshared");
    d.ok(&["rm", "-f", "prop"]);
    drop(mounts);

    // A missing source: refused at create with dockerd's words, nothing stored.
    let before = d.ok(&["ps", "-aq"]);
    let missing = host.path().join("missing").display().to_string();
    let message = format!(
        "invalid mount config for type \"bind\": bind source path does not exist: {missing}"
    );
    fails(
        &d,
        &[
            "create",
            "--mount",
            &format!("type=bind,src={missing},dst=/x"),
            "bb",
            "true",
        ],
        &message,
    );
    berth_fails(
        &d,
        &[
            "run",
            "--mount",
            &format!("type=bind,src={missing},dst=/x"),
            "bb",
            "true",
        ],
        &message,
    );
    assert_eq!(d.ok(&["ps", "-aq"]), before);
    assert!(!Path::new(&missing).exists());
    // With CreateMountpoint (API only: the docker CLI has no key for it) it is made.
    let body = json!({"Image": "bb", "Cmd": ["true"], "HostConfig": {"Mounts": [
        {"Type": "bind", "Source": missing, "Target": "/x", "BindOptions": {"CreateMountpoint": true}}
    ]}});
    let (status, created) = api(
        &d,
        "POST",
        "/v1.43/containers/create?name=mkdir",
        Some(&body),
    );
    assert_eq!(status, 201, "{created}");
    d.ok(&["start", "-a", "mkdir"]);
    assert!(Path::new(&missing).is_dir());
    d.ok(&["rm", "mkdir"]);
}

#[test]
fn a_tmpfs_mount_has_its_size_and_mode() {
    if skip() {
        return;
    }
    let d = Daemon::start();
    d.busybox("bb");
    let line = d.ok(&[
        "run",
        "--rm",
        "--mount",
        "type=tmpfs,destination=/t,tmpfs-size=1m,tmpfs-mode=700",
        "bb",
        "sh",
        "-c",
        "echo x > /t/f && grep ' /t ' /proc/mounts && stat -c %a /t",
    ]);
    let (mount, mode) = line.trim().split_once('\n').unwrap();
    let fields: Vec<&str> = mount.split_whitespace().collect();
    assert_eq!(&fields[..3], ["tmpfs", "/t", "tmpfs"], "{line}");
    let options: Vec<&str> = fields[3].split(',').collect();
    for o in ["rw", "nosuid", "nodev", "noexec", "size=1024k", "mode=700"] {
        assert!(options.contains(&o), "{o} not in {line}");
    }
    assert_eq!(mode, "700");
    // Read-only, and through berth with a sticky mode.
    let line = d.ok(&[
        "run",
        "--rm",
        "--mount",
        "type=tmpfs,dst=/t,readonly",
        "bb",
        "grep",
        " /t ",
        "/proc/mounts",
    ]);
    assert!(line.contains(" tmpfs ro,"), "{line}");
    let line = berth_ok(
        &d,
        &[
            "run",
            "--rm",
            "--mount",
            "type=tmpfs,dst=/t,tmpfs-size=2m,tmpfs-mode=1770",
            "bb",
            "grep",
            " /t ",
            "/proc/mounts",
        ],
    );
    assert!(
        line.contains("size=2048k") && line.contains("mode=1770"),
        "{line}"
    );
    // tmpfs options the API refuses.
    refused(
        &d,
        json!({"Mounts": [{"Type": "tmpfs", "Target": "/t", "TmpfsOptions": {"Options": [["uid", "0"]]}}]}),
        "invalid mount config for type \"tmpfs\": invalid option: uid",
    );
    refused(
        &d,
        json!({"Mounts": [{"Type": "tmpfs", "Source": "x", "Target": "/t"}]}),
        "invalid mount config for type \"tmpfs\": field Source must not be specified",
    );
    assert!(d.mounts_under().is_empty(), "{:?}", d.mounts_under());
}

#[test]
fn nocopy_and_subpath_volume_mounts() {
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
        "mkdir /seed && echo seeded > /seed/f",
    ]);
    d.ok(&["commit", "mk", "seeded"]);
    d.ok(&["rm", "mk"]);

    // The image's files are copied into an empty volume, not with volume-nocopy.
    let out = d.ok(&[
        "run",
        "--rm",
        "--mount",
        "source=copied,target=/seed",
        "seeded",
        "cat",
        "/seed/f",
    ]);
    assert_eq!(out, "seeded\n");
    let out = d.ok(&[
        "run",
        "--rm",
        "--mount",
        "source=empty,target=/seed,volume-nocopy",
        "seeded",
        "ls",
        "-A",
        "/seed",
    ]);
    assert_eq!(out, "");
    let out = berth_ok(
        &d,
        &[
            "run",
            "--rm",
            "--mount",
            "source=empty2,target=/seed,volume-nocopy=true",
            "seeded",
            "ls",
            "-A",
            "/seed",
        ],
    );
    assert_eq!(out, "");

    // A subpath: only that directory of the volume; a symlink inside the volume is followed,
    // one leading out of it is refused, a missing path too; `..` is refused at create.
    d.ok(&[
        "run",
        "--rm",
        "--mount",
        "source=sp,target=/v",
        "bb",
        "sh",
        "-c",
        "mkdir -p /v/sub && echo in-sub > /v/sub/f && echo top > /v/top && ln -s sub /v/in && ln -s /etc /v/out",
    ]);
    let out = d.ok(&[
        "run",
        "--rm",
        "--mount",
        "source=sp,target=/x,volume-subpath=sub",
        "bb",
        "ls",
        "/x",
    ]);
    assert_eq!(out, "f\n");
    let out = d.ok(&[
        "run",
        "--rm",
        "--mount",
        "source=sp,target=/x,volume-subpath=in,readonly",
        "bb",
        "cat",
        "/x/f",
    ]);
    assert_eq!(out, "in-sub\n");
    let out = berth_ok(
        &d,
        &[
            "run",
            "--rm",
            "--mount",
            "source=sp,target=/x,volume-subpath=sub",
            "bb",
            "cat",
            "/x/f",
        ],
    );
    assert_eq!(out, "in-sub\n");
    // Written through the subpath, seen in the volume.
    d.ok(&[
        "run",
        "--rm",
        "--mount",
        "source=sp,target=/x,volume-subpath=sub",
        "bb",
        "sh",
        "-c",
        "echo w > /x/w",
    ]);
    let out = d.ok(&[
        "run",
        "--rm",
        "--mount",
        "source=sp,target=/v",
        "bb",
        "cat",
        "/v/sub/w",
    ]);
    assert_eq!(out, "w\n");

    d.ok(&[
        "create",
        "--name",
        "out",
        "--mount",
        "source=sp,target=/x,volume-subpath=out",
        "bb",
        "ls",
        "/x",
    ]);
    fails(
        &d,
        &["start", "out"],
        "path concatenation escapes the base directory",
    );
    d.ok(&[
        "create",
        "--name",
        "nope",
        "--mount",
        "source=sp,target=/x,volume-subpath=nope",
        "bb",
        "true",
    ]);
    fails(
        &d,
        &["start", "nope"],
        "/volumes/sp/_data/nope: no such file or directory",
    );
    d.ok(&["rm", "out", "nope"]);
    let before = d.ok(&["ps", "-aq"]);
    fails(
        &d,
        &["create", "--mount", "source=sp,target=/x,volume-subpath=../sp2", "bb", "true"],
        "invalid mount config for type \"volume\": subpath must be a relative path within the volume",
    );
    fails(
        &d,
        &["create", "--mount", "target=/x,volume-subpath=sub", "bb", "true"],
        "invalid mount config for type \"volume\": must not set Subpath when using anonymous volumes",
    );
    assert_eq!(d.ok(&["ps", "-aq"]), before);
    // Nothing stays mounted once the containers are gone.
    assert!(d.mounts_under().is_empty(), "{:?}", d.mounts_under());
}

#[test]
fn an_anonymous_mount_volume_goes_with_rm_v() {
    if skip() {
        return;
    }
    let d = Daemon::start();
    d.busybox("bb");
    d.ok(&[
        "create",
        "--name",
        "anon1",
        "--mount",
        "type=volume,target=/x",
        "bb",
        "true",
    ]);
    let names = d.ok(&[
        "volume",
        "ls",
        "-q",
        "--filter",
        "label=com.docker.volume.anonymous",
    ]);
    let name = names.trim().to_string();
    assert_eq!(name.len(), 64, "{names}");
    let mounted = d.ok(&[
        "inspect",
        "-f",
        "{{range .Mounts}}{{.Type}} {{.Name}} {{.Destination}}{{end}}",
        "anon1",
    ]);
    assert_eq!(mounted.trim(), format!("volume {name} /x"));
    d.ok(&["start", "-a", "anon1"]);
    d.ok(&["rm", "-v", "anon1"]);
    assert_eq!(d.ok(&["volume", "ls", "-q"]).trim(), "");

    d.ok(&["run", "--rm", "--mount", "type=volume,dst=/x", "bb", "true"]);
    berth_ok(
        &d,
        &["run", "--rm", "--mount", "type=volume,dst=/x", "bb", "true"],
    );
    assert_eq!(d.ok(&["volume", "ls", "-q"]).trim(), "");

    // A plain `rm` keeps it (prune takes it).
    d.ok(&[
        "create",
        "--name",
        "anon2",
        "--mount",
        "type=volume,target=/x",
        "bb",
        "true",
    ]);
    d.ok(&["rm", "anon2"]);
    assert_eq!(lines(&d.ok(&["volume", "ls", "-q"])).len(), 1);
    d.ok(&["volume", "prune", "-f"]);
    assert_eq!(d.ok(&["volume", "ls", "-q"]).trim(), "");

    // An image's VOLUME a mount covers gets no volume of its own.
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
    let out = d.ok(&[
        "run",
        "--rm",
        "--mount",
        "source=named,target=/seed",
        "withvol",
        "cat",
        "/seed/f",
    ]);
    assert_eq!(out, "from-image\n");
    assert_eq!(d.ok(&["volume", "ls", "-q"]).trim(), "named");

    // Read-only anonymous volumes are refused, as by dockerd.
    fails(
        &d,
        &["create", "--mount", "type=volume,target=/x,readonly", "bb", "true"],
        "invalid mount config for type \"volume\": must not set ReadOnly mode when using anonymous volumes",
    );
    assert_eq!(d.ok(&["volume", "ls", "-q"]).trim(), "named");
    assert_eq!(d.ok(&["ps", "-aq"]).trim(), "");
}

#[test]
fn binds_and_mounts_are_checked_at_create_with_dockerds_errors() {
    if skip() {
        return;
    }
    let d = Daemon::start();
    d.busybox("bb");
    d.ok(&["volume", "create", "existing"]);

    // Through the docker CLI: refused at create, nothing stored.
    let cases: &[(&[&str], &str)] = &[
        (
            &["-v", "relvol:x"],
            "invalid volume specification: 'relvol:x': invalid mount config for type \"volume\": invalid mount path: 'x' mount path must be absolute",
        ),
        (&["-v", "vol:/x:bogusmode"], "invalid mode: bogusmode"),
        (&["-v", "one:/x", "-v", "two:/x"], "Duplicate mount point: /x"),
        (&["-v", "one:/x", "--mount", "source=two,target=/x"], "Duplicate mount point: /x"),
        (&["-v", "one:/x", "--tmpfs", "/x"], "Duplicate mount point: /x"),
        (
            &["--mount", "source=one,target=/y", "--mount", "type=tmpfs,target=/y"],
            "Duplicate mount point: /y",
        ),
        (&["--mount", "type=bogus,target=/x"], "invalid mount config for type \"bogus\": mount type unknown"),
        (
            &["--mount", "type=bind,source=/tmp,target=/x,bind-propagation=odd"],
            "invalid mount config for type \"bind\": invalid propagation mode: odd",
        ),
        (&["--mount", "source=vol,target=/"], "invalid mount config for type \"volume\": invalid specification: destination can't be '/'"),
        (&["--mount", "source=vol,target=rel"], "invalid mount config for type \"volume\": invalid mount path: 'rel' mount path must be absolute"),
        (&["--mount", "type=bind,source=rel,target=/x"], "invalid mount config for type \"bind\": invalid mount path: 'rel' mount path must be absolute"),
    ];
    for (flags, message) in cases {
        let mut args = vec!["create", "--name", "bad"];
        args.extend_from_slice(flags);
        args.extend(["bb", "true"]);
        fails(&d, &args, message);
        let mut args = vec!["create", "--name", "bad"];
        args.extend_from_slice(flags);
        args.extend(["bb", "true"]);
        berth_fails(&d, &args, message);
    }
    assert_eq!(d.ok(&["ps", "-aq"]).trim(), "");
    // No volume of a refused container was made (`one`, `vol` came before the error).
    assert_eq!(d.ok(&["volume", "ls", "-q"]).trim(), "existing");

    // Through the API: status 400, dockerd's words, nothing stored.
    refused(
        &d,
        json!({"Binds": ["../../etc:/x"]}),
        "create ../../etc: \"../../etc\" includes invalid characters for a local volume name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed. If you intended to pass a host directory, use absolute path",
    );
    refused(
        &d,
        json!({"Binds": ["relvol:x"]}),
        "invalid volume specification: 'relvol:x': invalid mount config for type \"volume\": invalid mount path: 'x' mount path must be absolute",
    );
    refused(
        &d,
        json!({"Binds": ["v:/x:bogusmode"]}),
        "invalid mode: bogusmode",
    );
    refused(
        &d,
        json!({"Binds": ["/tmp:ro"]}),
        "invalid volume specification: '/tmp:ro'",
    );
    refused(
        &d,
        json!({"Binds": ["/tmp:/x:nocopy"]}),
        "invalid volume specification: '/tmp:/x:nocopy': invalid mount config for type \"bind\": field VolumeOptions must not be specified",
    );
    refused(
        &d,
        json!({"Binds": ["ok:/x", "v:/x/"]}),
        "Duplicate mount point: /x",
    );
    refused(
        &d,
        json!({"Binds": ["ok:/x"], "Mounts": [{"Type": "volume", "Source": "ok2", "Target": "/x/"}]}),
        "Duplicate mount point: /x/",
    );
    refused(
        &d,
        json!({"Mounts": [{"Type": "bind", "Source": "/nonexistent/berth-src", "Target": "/x"}]}),
        "invalid mount config for type \"bind\": bind source path does not exist: /nonexistent/berth-src",
    );
    refused(
        &d,
        json!({"Mounts": [{"Type": "bind", "Target": "/x"}]}),
        "invalid mount config for type \"bind\": field Source must not be empty",
    );
    refused(
        &d,
        json!({"Mounts": [{"Type": "volume", "Source": "v", "Target": "/x", "BindOptions": {}}]}),
        "invalid mount config for type \"volume\": field BindOptions must not be specified",
    );
    refused(
        &d,
        json!({"Mounts": [{"Type": "bind", "Source": "/tmp", "Target": "/x", "VolumeOptions": {}}]}),
        "invalid mount config for type \"bind\": field VolumeOptions must not be specified",
    );
    refused(
        &d,
        json!({"Mounts": [{"Type": "volume", "Source": "v", "Target": "/x", "VolumeOptions": {"Subpath": "/abs"}}]}),
        "invalid mount config for type \"volume\": subpath must be a relative path within the volume",
    );
    refused(
        &d,
        json!({"Mounts": [{"Type": "volume", "Source": "bad/name", "Target": "/x"}]}),
        "create bad/name: \"bad/name\" includes invalid characters for a local volume name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed. If you intended to pass a host directory, use absolute path",
    );
    refused(
        &d,
        json!({"Mounts": [{"Type": "volume", "Source": "v", "Target": "/x"}]}),
        "create v: volume name is too short, names should be at least two alphanumeric characters",
    );
    refused(
        &d,
        json!({"Mounts": [{"Type": "volume", "Source": "vol", "Target": "/x", "VolumeOptions": {"DriverConfig": {"Options": {"type": "nfs"}}}}]}),
        "create vol: only bind-backed local volumes (type=none, o=bind, device=DIR) are supported",
    );
    refused(
        &d,
        json!({"Mounts": [{"Type": "npipe", "Source": "p", "Target": "/x"}]}),
        "invalid mount config for type \"npipe\": mount type unknown",
    );
    // An unknown volume driver is a 404, as dockerd's plugin lookup.
    let body = json!({"Image": "bb", "Cmd": ["true"], "HostConfig": {"Mounts": [
        {"Type": "volume", "Source": "vol", "Target": "/x", "VolumeOptions": {"DriverConfig": {"Name": "nfs-plugin"}}}
    ]}});
    let (status, answer) = api(&d, "POST", "/v1.43/containers/create", Some(&body));
    assert_eq!(status, 404, "{answer}");
    assert_eq!(
        answer["message"],
        "error looking up volume plugin nfs-plugin: plugin \"nfs-plugin\" not found"
    );
    // `Consistency` is accepted and ignored, as on Linux dockerd.
    let out = d.ok(&[
        "run",
        "--rm",
        "--mount",
        "source=existing,target=/x,consistency=cached",
        "bb",
        "true",
    ]);
    assert_eq!(out, "");
    assert_eq!(d.ok(&["ps", "-aq"]).trim(), "");
    assert_eq!(d.ok(&["volume", "ls", "-q"]).trim(), "existing");
}

#[test]
fn inspect_and_ps_show_the_mounts_as_dockerd() {
    if skip() {
        return;
    }
    let d = Daemon::start();
    d.busybox("bb");
    let host = tempfile::tempdir().unwrap();
    let src = host.path().display().to_string();
    let data = d.dir.join("data/volumes");
    d.ok(&[
        "create",
        "--name",
        "mnt",
        "-v",
        "named:/n:ro",
        "-v",
        &format!("{src}:/b1"),
        "--mount",
        "source=mv,target=/v,readonly",
        "--mount",
        &format!("type=bind,src={src},dst=/b2,bind-propagation=rslave"),
        "--mount",
        "type=tmpfs,dst=/t,tmpfs-size=2m,tmpfs-mode=755",
        "--mount",
        "type=volume,dst=/anon",
        "bb",
        "true",
    ]);
    let anon = d.ok(&[
        "volume",
        "ls",
        "-q",
        "--filter",
        "label=com.docker.volume.anonymous",
    ]);
    let anon = anon.trim();
    let inspect: Value = serde_json::from_str(&d.ok(&["inspect", "mnt"])).unwrap();
    let mut mounts = inspect[0]["Mounts"].as_array().unwrap().clone();
    mounts.sort_by_key(|m| m["Destination"].as_str().unwrap().to_string());
    let volume = |name: &str, dest: &str, mode: &str, rw: bool| {
        json!({"Type": "volume", "Name": name, "Source": data.join(name).join("_data"),
               "Destination": dest, "Driver": "local", "Mode": mode, "RW": rw, "Propagation": ""})
    };
    let expected = vec![
        volume(anon, "/anon", "z", true),
        json!({"Type": "bind", "Source": src, "Destination": "/b1", "Mode": "", "RW": true, "Propagation": "rprivate"}),
        json!({"Type": "bind", "Source": src, "Destination": "/b2", "Mode": "", "RW": true, "Propagation": "rslave"}),
        volume("named", "/n", "ro", false),
        json!({"Type": "tmpfs", "Source": "", "Destination": "/t", "Mode": "", "RW": true, "Propagation": ""}),
        volume("mv", "/v", "z", false),
    ];
    assert_eq!(Value::Array(mounts.clone()), Value::Array(expected));

    // HostConfig.Mounts: what the client sent.
    assert_eq!(
        inspect[0]["HostConfig"]["Mounts"],
        json!([
            {"Type": "volume", "Source": "mv", "Target": "/v", "ReadOnly": true},
            {"Type": "bind", "Source": src, "Target": "/b2", "BindOptions": {"Propagation": "rslave"}},
            {"Type": "tmpfs", "Target": "/t", "TmpfsOptions": {"SizeBytes": 2097152, "Mode": 493}},
            {"Type": "volume", "Target": "/anon"},
        ])
    );
    // The same through berth.
    let out = berth_ok(&d, &["inspect", "mnt"]);
    let berth_view: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        berth_view[0]["HostConfig"]["Mounts"],
        inspect[0]["HostConfig"]["Mounts"]
    );

    // ps: the API's Mounts are inspect's; the column names volumes and bind sources.
    let (status, list) = api(&d, "GET", "/v1.43/containers/json?all=1", None);
    assert_eq!(status, 200);
    let mut listed = list[0]["Mounts"].as_array().unwrap().clone();
    listed.sort_by_key(|m| m["Destination"].as_str().unwrap().to_string());
    assert_eq!(listed, mounts);
    let column = d.ok(&["ps", "-a", "--no-trunc", "--format", "{{.Mounts}}"]);
    for name in ["named", "mv", anon, &src] {
        assert!(column.contains(name), "{name} not in {column}");
    }
    d.ok(&["rm", "-v", "mnt"]);
    assert_eq!(lines(&d.ok(&["volume", "ls", "-q"])), ["mv", "named"]);
}

#[test]
fn berth_mount_flag_errors_are_the_docker_clis() {
    if skip() {
        return;
    }
    let d = Daemon::start();
    d.busybox("bb");
    let cases = [
        ("foo=bar", "unexpected key 'foo' in 'foo=bar'"),
        ("src=v", "target is required"),
        (
            "type=volume,target=/x,novalue",
            "invalid field 'novalue' must be a key=value pair",
        ),
        (
            "type=bind,target=/x,volume-nocopy",
            "cannot mix 'volume-*' options with mount type 'bind'",
        ),
        ("target=/x,tmpfs-mode=9", "invalid value for tmpfs-mode: 9"),
        (
            "readonly=maybe,target=/x",
            "invalid value for readonly: maybe",
        ),
    ];
    for (value, message) in cases {
        let expected = format!("invalid argument \"{value}\" for \"--mount\" flag: {message}");
        // The docker CLI says the same.
        fails(&d, &["create", "--mount", value, "bb", "true"], &expected);
        berth_fails(&d, &["create", "--mount", value, "bb", "true"], &expected);
        berth_fails(&d, &["run", "--mount", value, "bb", "true"], &expected);
    }
    assert_eq!(d.ok(&["ps", "-aq"]).trim(), "");
    assert_eq!(d.ok(&["volume", "ls", "-q"]).trim(), "");
}
