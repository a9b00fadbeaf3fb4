#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions unwrap too

//! `--mount` (`HostConfig.Mounts`) through the real docker CLI and through `berth`: volumes
//! whose data outlives the container, binds of host directories (read-only, non-recursive,
//! propagation), tmpfs mounts with their size and mode, `nocopy`, subpaths, anonymous volumes
//! gone with `rm -v`; the create-time checks of binds and mounts with dockerd's 400 errors and
//! nothing stored; `Duplicate mount point`; inspect's `Mounts` and `HostConfig.Mounts`, ps's
//! `Mounts`.
//!
//! Commands are written as one line of blank-separated words (no argument of these tests holds
//! a blank); a shell script, when there is one, is passed apart.

mod common;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use common::{skip, text, Daemon};
use serde_json::{json, Value};

fn words(line: &str) -> Vec<&str> {
    line.split_whitespace().collect()
}

/// `docker LINE`, which must succeed: its stdout.
fn ok(d: &Daemon, line: &str) -> String {
    d.ok(&words(line))
}

/// `docker LINE sh -c SCRIPT`, which must succeed: its stdout.
fn ok_sh(d: &Daemon, line: &str, script: &str) -> String {
    let mut args = words(line);
    args.extend(["sh", "-c", script]);
    d.ok(&args)
}

/// `docker LINE`, which must fail with `expected` in its stderr.
fn fails(d: &Daemon, line: &str, expected: &str) -> String {
    check_failed(&d.docker(&words(line)), line, expected)
}

/// `docker LINE sh -c SCRIPT`, which must fail with `expected` in its stderr.
fn fails_sh(d: &Daemon, line: &str, script: &str, expected: &str) -> String {
    let mut args = words(line);
    args.extend(["sh", "-c", script]);
    check_failed(&d.docker(&args), line, expected)
}

/// `berth LINE`, which must succeed: its stdout.
fn berth_ok(d: &Daemon, line: &str) -> String {
    let out = d.berth(&words(line));
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "berth {line}: {stdout}{stderr}");
    stdout
}

/// `berth LINE`, which must fail with status 125 and `expected` in its stderr.
fn berth_fails(d: &Daemon, line: &str, expected: &str) -> String {
    let out = d.berth(&words(line));
    assert_eq!(
        out.status.code(),
        Some(125),
        "berth {line}: {}",
        text(&out).1
    );
    check_failed(&out, line, expected)
}

fn check_failed(out: &Output, line: &str, expected: &str) -> String {
    let (stdout, stderr) = text(out);
    assert!(!out.status.success(), "{line} succeeded: {stdout}{stderr}");
    assert!(
        stderr.contains(expected),
        "{line}: {stderr:?} does not hold {expected:?}"
    );
    stderr
}

/// The sorted words of `s`.
fn sorted(s: &str) -> Vec<String> {
    let mut v: Vec<String> = s.split_whitespace().map(str::to_string).collect();
    v.sort();
    v
}

/// Host mounts a test makes, unmounted (last first) when it ends, also when it fails.
struct HostMounts(Vec<PathBuf>);

impl HostMounts {
    fn mount(&mut self, line: &str, target: &Path) {
        let status = std::process::Command::new("mount")
            .args(words(line))
            .arg(target)
            .status()
            .unwrap();
        assert!(status.success(), "mount {line} {}", target.display());
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

/// One answer of the API to a raw HTTP/1.1 request on the socket (read within 20 s).
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
        let (mut out, mut rest) = (Vec::new(), payload.as_slice());
        while let Some(nl) = rest.windows(2).position(|w| w == b"\r\n") {
            let size = std::str::from_utf8(&rest[..nl]).unwrap().trim();
            let size = usize::from_str_radix(size, 16).unwrap();
            if size == 0 {
                break;
            }
            out.extend_from_slice(&rest[nl + 2..nl + 2 + size]);
            rest = &rest[nl + 4 + size..];
        }
        payload = out;
    }
    (
        status,
        serde_json::from_slice(&payload).unwrap_or(Value::Null),
    )
}

/// A container created from `host_config` by the API must be refused with 400 and
/// `message`, and leave no container and no volume behind.
fn refused(d: &Daemon, host_config: Value, message: &str) {
    let (containers, volumes) = (ok(d, "ps -aq"), ok(d, "volume ls -q"));
    let body = json!({"Image": "bb", "Cmd": ["true"], "HostConfig": host_config});
    let (status, answer) = api(
        d,
        "POST",
        "/v1.43/containers/create?name=refused",
        Some(&body),
    );
    let got = (status, answer["message"].as_str().unwrap_or_default());
    assert_eq!(got, (400, message), "{body}");
    assert_eq!(ok(d, "ps -aq"), containers, "{body}");
    assert_eq!(ok(d, "volume ls -q"), volumes, "{body}");
}

#[test]
fn a_volume_mount_keeps_its_data_for_the_next_container() {
    if skip() {
        return;
    }
    let d = Daemon::start();
    d.busybox("bb");

    // Written through --mount, kept by `rm`, read by the next container.
    let mount = "--mount type=volume,source=data,target=/x";
    ok_sh(
        &d,
        &format!("run --name writer {mount} bb"),
        "echo kept > /x/f",
    );
    ok(&d, "rm writer");
    let read = ok(&d, "run --rm --mount source=data,target=/y bb cat /y/f");
    assert_eq!(read, "kept\n");
    assert_eq!(ok(&d, "volume ls -q").trim(), "data");

    // The same through berth, both ways.
    let read = berth_ok(&d, "run --rm --mount src=data,dst=/z bb cat /z/f");
    assert_eq!(read, "kept\n");
    let mut args = words("run --name bw --mount type=volume,source=data,destination=/x bb");
    args.extend(["sh", "-c", "echo again >> /x/f"]);
    assert!(d.berth(&args).status.success());
    berth_ok(&d, "rm bw");
    let read = ok(&d, "run --rm --mount source=data,target=/y bb cat /y/f");
    assert_eq!(read, "kept\nagain\n");

    // Read-only: read, writes refused.
    let line = "run --rm --mount source=data,target=/y,readonly bb";
    let err = fails_sh(
        &d,
        line,
        "cat /y/f >&2; touch /y/new",
        "Read-only file system",
    );
    assert!(err.starts_with("kept\nagain\n"), "{err}");
    let out = d.berth(&words(
        "run --rm --mount source=data,target=/y,ro=true bb touch /y/new",
    ));
    assert!(!out.status.success());
    assert!(
        text(&out).1.contains("Read-only file system"),
        "{}",
        text(&out).1
    );

    // A volume a mount makes gets the mount's labels; an existing one keeps its own.
    ok(&d, "run --rm --mount source=labelled,target=/x,volume-label=team=a,volume-label=tier=db bb true");
    ok(
        &d,
        "run --rm --mount source=labelled,target=/x,volume-label=team=b bb true",
    );
    let labels = d.ok(&[
        "volume",
        "inspect",
        "-f",
        "{{.Labels.team}} {{.Labels.tier}}",
        "labelled",
    ]);
    assert_eq!(labels.trim(), "a db");

    // Driver options are `volume create -o`: here a bind-backed volume of a host directory.
    let host = tempfile::tempdir().unwrap();
    let opts = "volume-driver=local,volume-opt=type=none,volume-opt=o=bind";
    let device = format!("volume-opt=device={}", host.path().display());
    let line = format!("run --rm --mount source=hostvol,target=/x,{opts},{device} bb");
    ok_sh(&d, &line, "echo to-host > /x/f");
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
    ok(
        &d,
        "create --name user --mount source=data,target=/x bb true",
    );
    fails(&d, "volume rm data", "remove data: volume is in use - [");
    ok(&d, "rm user");
    ok(&d, "volume rm data labelled hostvol");
    assert_eq!(ok(&d, "volume ls -q").trim(), "");
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
    let bind = format!("--mount type=bind,source={src},target=/h");

    let out = ok_sh(
        &d,
        &format!("run --rm {bind} bb"),
        "cat /h/from-host; echo back > /h/from-ctr",
    );
    assert_eq!(out, "on the host\n");
    assert_eq!(
        std::fs::read_to_string(dir.join("from-ctr")).unwrap(),
        "back\n"
    );
    let out = berth_ok(
        &d,
        &format!("run --rm --mount type=bind,src={src},dst=/h bb cat /h/from-ctr"),
    );
    assert_eq!(out, "back\n");

    // Read-only.
    fails(
        &d,
        &format!("run --rm {bind},ro bb touch /h/x"),
        "Read-only file system",
    );
    assert!(!dir.join("x").exists());

    // Recursive by default; `bind-recursive=disabled` leaves the mounts below out.
    let mut mounts = HostMounts(Vec::new());
    mounts.mount("-t tmpfs -o size=1m tmpfs", &dir.join("sub"));
    std::fs::write(dir.join("sub/on-tmpfs"), "below\n").unwrap();
    let out = ok(&d, &format!("run --rm {bind} bb cat /h/sub/on-tmpfs"));
    assert_eq!(out, "below\n");
    let flat = format!("{bind},bind-recursive=disabled");
    assert_eq!(ok(&d, &format!("run --rm {flat} bb ls -A /h/sub")), "");
    assert_eq!(
        berth_ok(&d, &format!("run --rm {flat} bb ls -A /h/sub")),
        ""
    );
    // Read-only is not recursive (as dockerd below API 1.44), unless ReadOnlyForceRecursive.
    ok(&d, &format!("run --rm {bind},ro bb touch /h/sub/written"));
    let body = json!({"Image": "bb", "Cmd": ["touch", "/h/sub/refused"], "HostConfig": {"Mounts": [
        {"Type": "bind", "Source": src, "Target": "/h", "ReadOnly": true,
         "BindOptions": {"ReadOnlyForceRecursive": true, "Propagation": "rprivate"}}]}});
    assert_eq!(
        api(&d, "POST", "/v1.43/containers/create?name=rro", Some(&body)).0,
        201
    );
    fails(&d, "start -a rro", "Read-only file system");
    ok(&d, "rm rro");

    // Shared propagation needs a shared host mount; with one, a mount made on the host
    // later shows inside.
    let shared = format!("{bind},bind-propagation=rshared");
    let expected = format!("path {src} is mounted on ");
    fails(&d, &format!("run --rm {shared} bb true"), &expected);
    mounts.mount(&format!("--bind {src}"), &dir);
    mounts.mount("--make-shared", &dir);
    ok(&d, &format!("run -d --name prop {shared} bb sleep 300"));
    std::fs::create_dir_all(dir.join("late")).unwrap();
    mounts.mount("-t tmpfs -o size=1m tmpfs", &dir.join("late"));
    std::fs::write(dir.join("late/l"), "propagated\n").unwrap();
    assert_eq!(ok(&d, "exec prop cat /h/late/l"), "propagated\n");
    let prop = d.ok(&[
        "inspect",
        "-f",
        "{{range .Mounts}}{{.Propagation}}{{end}}",
        "prop",
    ]);
    assert_eq!(prop.trim(), "rshared");
    ok(&d, "rm -f prop");
    drop(mounts);

    // A missing source: refused at create with dockerd's words, nothing stored.
    let before = ok(&d, "ps -aq");
    let missing = host.path().join("missing").display().to_string();
    let message = format!(
        "invalid mount config for type \"bind\": bind source path does not exist: {missing}"
    );
    let line = format!("--mount type=bind,src={missing},dst=/x bb true");
    fails(&d, &format!("create {line}"), &message);
    berth_fails(&d, &format!("run {line}"), &message);
    assert_eq!(ok(&d, "ps -aq"), before);
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
    ok(&d, "start -a mkdir");
    assert!(Path::new(&missing).is_dir());
    ok(&d, "rm mkdir");
}

#[test]
fn a_tmpfs_mount_has_its_size_and_mode() {
    if skip() {
        return;
    }
    let d = Daemon::start();
    d.busybox("bb");
    let line = "run --rm --mount type=tmpfs,destination=/t,tmpfs-size=1m,tmpfs-mode=700 bb";
    let out = ok_sh(
        &d,
        line,
        "echo x > /t/f && grep ' /t ' /proc/mounts && stat -c %a /t",
    );
    let (mount, mode) = out.trim().split_once('\n').unwrap();
    let fields: Vec<&str> = mount.split_whitespace().collect();
    assert_eq!(&fields[..3], ["tmpfs", "/t", "tmpfs"], "{out}");
    let options: Vec<&str> = fields[3].split(',').collect();
    for o in ["rw", "nosuid", "nodev", "noexec", "size=1024k", "mode=700"] {
        assert!(options.contains(&o), "{o} not in {out}");
    }
    assert_eq!(mode, "700");
    // Per container: the next one starts empty.
    assert_eq!(ok(&d, "run --rm --mount type=tmpfs,dst=/t bb ls -A /t"), "");
    // Read-only, and through berth with a sticky mode.
    let out = d.ok(&[
        "run",
        "--rm",
        "--mount",
        "type=tmpfs,dst=/t,readonly",
        "bb",
        "grep",
        " /t ",
        "/proc/mounts",
    ]);
    assert!(out.contains(" tmpfs ro,"), "{out}");
    let mut args =
        words("run --rm --mount type=tmpfs,dst=/t,tmpfs-size=2m,tmpfs-mode=1770 bb grep");
    args.extend([" /t ", "/proc/mounts"]);
    let out = text(&d.berth(&args)).0;
    assert!(
        out.contains("size=2048k") && out.contains("mode=1770"),
        "{out}"
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
    ok_sh(
        &d,
        "run --name mk bb",
        "mkdir /seed && echo seeded > /seed/f",
    );
    ok(&d, "commit mk seeded");
    ok(&d, "rm mk");

    // The image's files are copied into an empty volume, not with volume-nocopy.
    let out = ok(
        &d,
        "run --rm --mount source=copied,target=/seed seeded cat /seed/f",
    );
    assert_eq!(out, "seeded\n");
    let line = "run --rm --mount source=empty,target=/seed,volume-nocopy seeded ls -A /seed";
    assert_eq!(ok(&d, line), "");
    let line = "run --rm --mount source=empty2,target=/seed,volume-nocopy=true seeded ls -A /seed";
    assert_eq!(berth_ok(&d, line), "");

    // A subpath: only that directory of the volume; a symlink inside the volume is followed,
    // one leading out of it is refused, a missing path too; `..` is refused at create.
    let script = "mkdir -p /v/sub && echo in-sub > /v/sub/f && echo top > /v/top \
                  && ln -s sub /v/in && ln -s /etc /v/out";
    ok_sh(&d, "run --rm --mount source=sp,target=/v bb", script);
    let sub = "--mount source=sp,target=/x,volume-subpath";
    assert_eq!(ok(&d, &format!("run --rm {sub}=sub bb ls /x")), "f\n");
    let out = ok(&d, &format!("run --rm {sub}=in,readonly bb cat /x/f"));
    assert_eq!(out, "in-sub\n");
    assert_eq!(
        berth_ok(&d, &format!("run --rm {sub}=sub bb cat /x/f")),
        "in-sub\n"
    );
    // Written through the subpath, seen in the volume.
    ok_sh(&d, &format!("run --rm {sub}=sub bb"), "echo w > /x/w");
    let out = ok(&d, "run --rm --mount source=sp,target=/v bb cat /v/sub/w");
    assert_eq!(out, "w\n");

    ok(&d, &format!("create --name out {sub}=out bb ls /x"));
    fails(
        &d,
        "start out",
        "path concatenation escapes the base directory",
    );
    ok(&d, &format!("create --name nope {sub}=nope bb true"));
    fails(
        &d,
        "start nope",
        "/volumes/sp/_data/nope: no such file or directory",
    );
    ok(&d, "rm out nope");
    let before = ok(&d, "ps -aq");
    fails(
        &d,
        &format!("create {sub}=../sp2 bb true"),
        "invalid mount config for type \"volume\": subpath must be a relative path within the volume",
    );
    fails(
        &d,
        "create --mount target=/x,volume-subpath=sub bb true",
        "invalid mount config for type \"volume\": must not set Subpath when using anonymous volumes",
    );
    assert_eq!(ok(&d, "ps -aq"), before);
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
    ok(
        &d,
        "create --name anon1 --mount type=volume,target=/x bb true",
    );
    let names = ok(
        &d,
        "volume ls -q --filter label=com.docker.volume.anonymous",
    );
    let name = names.trim().to_string();
    assert_eq!(name.len(), 64, "{names}");
    let format = "{{range .Mounts}}{{.Type}} {{.Name}} {{.Destination}}{{end}}";
    let mounted = d.ok(&["inspect", "-f", format, "anon1"]);
    assert_eq!(mounted.trim(), format!("volume {name} /x"));
    ok(&d, "start -a anon1");
    ok(&d, "rm -v anon1");
    assert_eq!(ok(&d, "volume ls -q").trim(), "");

    ok(&d, "run --rm --mount type=volume,dst=/x bb true");
    berth_ok(&d, "run --rm --mount type=volume,dst=/x bb true");
    assert_eq!(ok(&d, "volume ls -q").trim(), "");

    // A plain `rm` keeps it (prune takes it).
    ok(
        &d,
        "create --name anon2 --mount type=volume,target=/x bb true",
    );
    ok(&d, "rm anon2");
    assert_eq!(sorted(&ok(&d, "volume ls -q")).len(), 1);
    ok(&d, "volume prune -f");
    assert_eq!(ok(&d, "volume ls -q").trim(), "");

    // An image's VOLUME a mount covers gets no volume of its own.
    ok_sh(
        &d,
        "run --name mk bb",
        "mkdir /seed && echo from-image > /seed/f",
    );
    d.ok(&["commit", "--change", "VOLUME /seed", "mk", "withvol"]);
    ok(&d, "rm mk");
    let out = ok(
        &d,
        "run --rm --mount source=named,target=/seed withvol cat /seed/f",
    );
    assert_eq!(out, "from-image\n");
    assert_eq!(ok(&d, "volume ls -q").trim(), "named");

    // Read-only anonymous volumes are refused, as by dockerd.
    fails(
        &d,
        "create --mount type=volume,target=/x,readonly bb true",
        "invalid mount config for type \"volume\": must not set ReadOnly mode when using anonymous volumes",
    );
    assert_eq!(ok(&d, "volume ls -q").trim(), "named");
    assert_eq!(ok(&d, "ps -aq").trim(), "");
}

#[test]
fn binds_and_mounts_are_checked_at_create_with_dockerds_errors() {
    if skip() {
        return;
    }
    let d = Daemon::start();
    d.busybox("bb");
    ok(&d, "volume create existing");

    // Through the docker CLI and berth: refused at create, nothing stored. (Volume names of
    // one letter are avoided: the docker CLI reads `a:/x` as a Windows path.)
    let cases = [
        (
            "-v relvol:x",
            "invalid volume specification: 'relvol:x': invalid mount config for type \"volume\": invalid mount path: 'x' mount path must be absolute",
        ),
        ("-v vol:/x:bogusmode", "invalid mode: bogusmode"),
        ("-v one:/x -v two:/x", "Duplicate mount point: /x"),
        ("-v one:/x --mount source=two,target=/x", "Duplicate mount point: /x"),
        ("-v one:/x --tmpfs /x", "Duplicate mount point: /x"),
        ("--mount source=one,target=/y --mount type=tmpfs,target=/y", "Duplicate mount point: /y"),
        ("--mount type=bogus,target=/x", "invalid mount config for type \"bogus\": mount type unknown"),
        (
            "--mount type=bind,source=/tmp,target=/x,bind-propagation=odd",
            "invalid mount config for type \"bind\": invalid propagation mode: odd",
        ),
        (
            "--mount source=vol,target=/",
            "invalid mount config for type \"volume\": invalid specification: destination can't be '/'",
        ),
        (
            "--mount source=vol,target=rel",
            "invalid mount config for type \"volume\": invalid mount path: 'rel' mount path must be absolute",
        ),
        (
            "--mount type=bind,source=rel,target=/x",
            "invalid mount config for type \"bind\": invalid mount path: 'rel' mount path must be absolute",
        ),
    ];
    for (flags, message) in cases {
        fails(&d, &format!("create --name bad {flags} bb true"), message);
        berth_fails(&d, &format!("create --name bad {flags} bb true"), message);
    }
    assert_eq!(ok(&d, "ps -aq").trim(), "");
    // No volume of a refused container was made (`one`, `vol` came before the error).
    assert_eq!(ok(&d, "volume ls -q").trim(), "existing");

    // Through the API: status 400, dockerd's words, nothing stored.
    let bad_name = |n: &str| {
        format!("create {n}: \"{n}\" includes invalid characters for a local volume name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed. If you intended to pass a host directory, use absolute path")
    };
    refused(
        &d,
        json!({"Binds": ["../../etc:/x"]}),
        &bad_name("../../etc"),
    );
    refused(
        &d,
        json!({"Binds": ["relvol:x"]}),
        "invalid volume specification: 'relvol:x': invalid mount config for type \"volume\": invalid mount path: 'x' mount path must be absolute",
    );
    refused(
        &d,
        json!({"Binds": ["vol:/x:bogusmode"]}),
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
        json!({"Binds": ["ok:/x", "vol:/x/"]}),
        "Duplicate mount point: /x",
    );
    let body = json!({"Binds": ["ok:/x"], "Mounts": [{"Type": "volume", "Source": "ok2", "Target": "/x/"}]});
    refused(&d, body, "Duplicate mount point: /x/");
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
        json!({"Mounts": [{"Type": "volume", "Source": "vol", "Target": "/x", "BindOptions": {}}]}),
        "invalid mount config for type \"volume\": field BindOptions must not be specified",
    );
    refused(
        &d,
        json!({"Mounts": [{"Type": "bind", "Source": "/tmp", "Target": "/x", "VolumeOptions": {}}]}),
        "invalid mount config for type \"bind\": field VolumeOptions must not be specified",
    );
    refused(
        &d,
        json!({"Mounts": [{"Type": "volume", "Source": "vol", "Target": "/x", "VolumeOptions": {"Subpath": "/abs"}}]}),
        "invalid mount config for type \"volume\": subpath must be a relative path within the volume",
    );
    let body = json!({"Mounts": [{"Type": "volume", "Source": "bad/name", "Target": "/x"}]});
    refused(&d, body, &bad_name("bad/name"));
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
    let message = "error looking up volume plugin nfs-plugin: plugin \"nfs-plugin\" not found";
    assert_eq!(answer["message"], message);
    // `Consistency` is accepted and ignored, as by dockerd on Linux.
    ok(
        &d,
        "run --rm --mount source=existing,target=/x,consistency=cached bb true",
    );
    assert_eq!(ok(&d, "ps -aq").trim(), "");
    assert_eq!(ok(&d, "volume ls -q").trim(), "existing");
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
    let line = format!(
        "create --name mnt -v named:/n:ro -v {src}:/b1 --mount source=mv,target=/v,readonly \
         --mount type=bind,src={src},dst=/b2,bind-propagation=rslave \
         --mount type=tmpfs,dst=/t,tmpfs-size=2m,tmpfs-mode=755 --mount type=volume,dst=/anon bb true"
    );
    ok(&d, &line);
    let anon = ok(
        &d,
        "volume ls -q --filter label=com.docker.volume.anonymous",
    );
    let anon = anon.trim();
    let inspect: Value = serde_json::from_str(&ok(&d, "inspect mnt")).unwrap();
    let volume = |name: &str, dest: &str, mode: &str, rw: bool| {
        json!({"Type": "volume", "Name": name, "Source": data.join(name).join("_data"),
               "Destination": dest, "Driver": "local", "Mode": mode, "RW": rw, "Propagation": ""})
    };
    let bind = |dest: &str, propagation: &str| {
        json!({"Type": "bind", "Source": src, "Destination": dest, "Mode": "", "RW": true,
               "Propagation": propagation})
    };
    // Listed by target.
    let expected = json!([
        volume(anon, "/anon", "z", true),
        bind("/b1", "rprivate"),
        bind("/b2", "rslave"),
        volume("named", "/n", "ro", false),
        {"Type": "tmpfs", "Source": "", "Destination": "/t", "Mode": "", "RW": true, "Propagation": ""},
        volume("mv", "/v", "z", false),
    ]);
    assert_eq!(inspect[0]["Mounts"], expected);

    // HostConfig.Mounts: what the client sent.
    let sent = json!([
        {"Type": "volume", "Source": "mv", "Target": "/v", "ReadOnly": true},
        {"Type": "bind", "Source": src, "Target": "/b2", "BindOptions": {"Propagation": "rslave"}},
        {"Type": "tmpfs", "Target": "/t", "TmpfsOptions": {"SizeBytes": 2097152, "Mode": 493}},
        {"Type": "volume", "Target": "/anon"},
    ]);
    assert_eq!(inspect[0]["HostConfig"]["Mounts"], sent);
    // The same through berth.
    let berth_view: Value = serde_json::from_str(&berth_ok(&d, "inspect mnt")).unwrap();
    assert_eq!(berth_view[0]["HostConfig"]["Mounts"], sent);
    assert_eq!(berth_view[0]["Mounts"], expected);

    // ps: the API's Mounts are inspect's; the column names volumes and bind sources.
    let (status, list) = api(&d, "GET", "/v1.43/containers/json?all=1", None);
    assert_eq!(status, 200);
    assert_eq!(list[0]["Mounts"], expected);
    let column = d.ok(&["ps", "-a", "--no-trunc", "--format", "{{.Mounts}}"]);
    for name in ["named", "mv", anon, &src] {
        assert!(column.contains(name), "{name} not in {column}");
    }
    ok(&d, "rm -v mnt");
    assert_eq!(sorted(&ok(&d, "volume ls -q")), ["mv", "named"]);
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
        ("src=vol", "target is required"),
        ("type=volume,target=/x,novalue", "invalid field 'novalue' must be a key=value pair"),
        ("type=bind,target=/x,volume-nocopy", "cannot mix 'volume-*' options with mount type 'bind'"),
        ("target=/x,tmpfs-mode=9", "invalid value for tmpfs-mode: 9"),
        ("readonly=maybe,target=/x", "invalid value for readonly: maybe"),
        (
            "target=/x,bind-recursive=foo",
            "invalid value for bind-recursive: foo (must be \"enabled\", \"disabled\", \"writable\", or \"readonly\")",
        ),
    ];
    for (value, message) in cases {
        let expected = format!("invalid argument \"{value}\" for \"--mount\" flag: {message}");
        // The docker CLI says the same.
        fails(&d, &format!("create --mount {value} bb true"), &expected);
        berth_fails(&d, &format!("create --mount {value} bb true"), &expected);
        berth_fails(&d, &format!("run --mount {value} bb true"), &expected);
    }
    assert_eq!(ok(&d, "ps -aq").trim(), "");
    assert_eq!(ok(&d, "volume ls -q").trim(), "");
}

/// The mounts of the mount namespace pinned at `pin`, read from a thread that enters it.
fn mounts_of_namespace(pin: &Path) -> Vec<String> {
    let pin = pin.to_path_buf();
    std::thread::spawn(move || {
        use nix::sched::{setns, unshare, CloneFlags};
        // A thread shares its filesystem context with the others until it unshares it.
        unshare(CloneFlags::CLONE_FS).unwrap();
        let ns = std::fs::File::open(&pin).unwrap();
        setns(&ns, CloneFlags::CLONE_NEWNS).unwrap();
        std::fs::read_to_string("/proc/thread-self/mountinfo")
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect()
    })
    .join()
    .unwrap()
}

/// Containers' mount namespaces are copied from berthd's mount template, which holds a few
/// mounts, instead of from the host's, which holds two per running container; binds, volumes
/// and the `/etc` files are attached from copies taken before. Without a template (unpinned
/// here) a container is made from a copy of the host's, as before.
#[test]
fn containers_are_made_in_the_mount_template() {
    if skip() {
        return;
    }
    let d = Daemon::start();
    d.busybox("bb");
    let pin = d.dir.join("run/bin/mntns");
    let template = mounts_of_namespace(&pin);
    assert!(template.len() <= 20, "{template:#?}");
    assert!(template.iter().all(|m| !m.contains("/containers/")));
    let src = d.dir.join("bindsrc");
    std::fs::create_dir_all(src.join("sub")).unwrap();
    std::fs::write(src.join("sub/f"), "from the host\n").unwrap();
    let made = |name: &str| -> bool {
        let id = d.ok(&[
            "run",
            "-d",
            "--name",
            name,
            "-v",
            &format!("{}:/b:ro", src.display()),
            "-v",
            "vol:/v",
            "--mount",
            "type=tmpfs,dst=/t",
            "bb",
            "sleep",
            "100",
        ]);
        let state = d.dir.join("run/runtime").join(id.trim()).join("state.json");
        let state: Value = serde_json::from_slice(&std::fs::read(state).unwrap()).unwrap();
        let seen = d.ok(&[
            "exec",
            name,
            "sh",
            "-c",
            "cat /b/sub/f; echo x > /v/y && cat /v/y; grep -c ' /t ' /proc/self/mountinfo; hostname",
        ]);
        assert_eq!(
            seen.lines().collect::<Vec<_>>()[..3],
            ["from the host", "x", "1"],
            "{seen}"
        );
        assert_eq!(seen.lines().nth(3), Some(&id.trim()[..12]));
        d.ok(&["rm", "-f", name]);
        state["mount_template"].as_bool().unwrap()
    };
    assert!(made("in-template"), "not made in the template");
    nix::mount::umount2(&pin, nix::mount::MntFlags::MNT_DETACH).unwrap();
    assert!(!made("from-host"), "an unpinned template was used");
}
