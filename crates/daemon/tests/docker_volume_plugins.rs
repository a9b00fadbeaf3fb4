#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] functions

//! Volume plugins (dockerd's legacy plugin protocol) through the real docker CLI, against a
//! small plugin written here: plain JSON over HTTP/1.1 on a unix socket (or TCP), keeping its
//! volumes as directories in a temporary directory and recording the calls it gets.
//! `volume create --driver`, `run -v` / `--mount volume-driver=` / `--volume-driver`
//! (`Mount` and `Unmount` with the container's id), `volume ls` / `inspect` / `rm`, the
//! driver kept across a daemon restart, `/info`'s `Plugins.Volume`, the plugin's errors as
//! dockerd words them, a missing plugin, and plugins found through spec files.

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{skip, text, Daemon};
use serde_json::{json, Value};

const MIME: &str = "application/vnd.docker.plugins.v1.2+json";

/// One call the plugin got.
#[derive(Debug, Clone)]
struct Call {
    method: String,
    body: Value,
    accept: String,
}

/// Where the plugin listens.
enum Listener {
    Unix(UnixListener, PathBuf),
    Tcp(std::net::TcpListener),
}

/// A volume plugin serving on its own thread until dropped.
struct Plugin {
    /// Its volumes: `<root>/<name>`.
    root: tempfile::TempDir,
    calls: Arc<Mutex<Vec<Call>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Plugin {
    /// A plugin on the unix socket `sock` (its directory made).
    fn unix(sock: &Path) -> Plugin {
        std::fs::create_dir_all(sock.parent().unwrap()).unwrap();
        let _ = std::fs::remove_file(sock);
        let listener = UnixListener::bind(sock).unwrap();
        Plugin::serve(Listener::Unix(listener, sock.to_path_buf()))
    }

    /// A plugin on 127.0.0.1, and its port.
    fn tcp() -> (Plugin, u16) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        (Plugin::serve(Listener::Tcp(listener)), port)
    }

    fn serve(listener: Listener) -> Plugin {
        let root = tempfile::tempdir().unwrap();
        let calls = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        // Accepts without blocking, so that a drop stops the thread even when the socket's
        // directory is gone already.
        match &listener {
            Listener::Unix(l, _) => l.set_nonblocking(true).unwrap(),
            Listener::Tcp(l) => l.set_nonblocking(true).unwrap(),
        }
        let thread = {
            let (dir, calls, stop) = (root.path().to_path_buf(), calls.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    let accepted: std::io::Result<Box<dyn ReadWrite>> = match &listener {
                        Listener::Unix(l, _) => l.accept().map(|(s, _)| Box::new(s) as _),
                        Listener::Tcp(l) => l.accept().map(|(s, _)| Box::new(s) as _),
                    };
                    match accepted {
                        Ok(stream) => {
                            let (dir, calls) = (dir.clone(), calls.clone());
                            std::thread::spawn(move || answer(stream, &dir, &calls));
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                            std::thread::sleep(Duration::from_millis(10));
                        }
                        Err(_) => break,
                    }
                }
                if let Listener::Unix(_, path) = &listener {
                    let _ = std::fs::remove_file(path);
                }
            })
        };
        Plugin {
            root,
            calls,
            stop,
            thread: Some(thread),
        }
    }

    fn dir(&self, volume: &str) -> PathBuf {
        self.root.path().join(volume)
    }

    /// The bodies of the calls of `method` so far.
    fn calls(&self, method: &str) -> Vec<Value> {
        self.calls
            .lock()
            .unwrap()
            .iter()
            .filter(|c| c.method == method)
            .map(|c| c.body.clone())
            .collect()
    }

    /// Waits (10 s at most) until a call of `method` has `body`.
    fn wait_for(&self, method: &str, body: &Value) -> bool {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if self.calls(method).contains(body) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }
}

impl Drop for Plugin {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

trait ReadWrite: Read + Write + Send {
    /// Blocking, with a read timeout (accepted from a non-blocking listener).
    fn timeouts(&self);
}

impl ReadWrite for std::os::unix::net::UnixStream {
    fn timeouts(&self) {
        let _ = self.set_nonblocking(false);
        let _ = self.set_read_timeout(Some(Duration::from_secs(10)));
    }
}

impl ReadWrite for std::net::TcpStream {
    fn timeouts(&self) {
        let _ = self.set_nonblocking(false);
        let _ = self.set_read_timeout(Some(Duration::from_secs(10)));
    }
}

/// Reads one request, answers it, closes the connection.
fn answer(stream: Box<dyn ReadWrite>, dir: &Path, calls: &Mutex<Vec<Call>>) {
    stream.timeouts();
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    if reader.read_line(&mut line).is_err() {
        return;
    }
    let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
    let (mut length, mut accept) = (0usize, String::new());
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header).unwrap_or(0) == 0 || header.trim().is_empty() {
            break;
        }
        let (name, value) = header.split_once(':').unwrap_or((&header, ""));
        match name.trim().to_ascii_lowercase().as_str() {
            "content-length" => length = value.trim().parse().unwrap_or(0),
            "accept" => accept = value.trim().to_string(),
            _ => {}
        }
    }
    let mut body = vec![0; length];
    if reader.read_exact(&mut body).is_err() {
        return;
    }
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let method = path.trim_start_matches('/').to_string();
    calls.lock().unwrap().push(Call {
        method: method.clone(),
        body: body.clone(),
        accept,
    });
    let (status, reply) = handle(&method, &body, dir);
    let text = reply.to_string();
    let mut stream = reader.into_inner();
    let _ = write!(
        stream,
        "HTTP/1.1 {status} X\r\nContent-Type: application/vnd.docker.plugins.v1+json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
        text.len()
    );
}

/// The plugin's volume driver: `Opts.fail` makes `Create` fail (500); volumes named
/// `nomount*` refuse `Mount` (500); a volume holding a file `busy` refuses `Remove` (a 200
/// answer with an `Err`).
fn handle(method: &str, body: &Value, dir: &Path) -> (u16, Value) {
    let name = body["Name"].as_str().unwrap_or("");
    let vol = dir.join(name);
    let mountpoint = vol.display().to_string();
    let ok = |v: Value| (200, v);
    let fail = |e: &str| (500, json!({"Err": e}));
    match method {
        "Plugin.Activate" => ok(json!({"Implements": ["VolumeDriver"]})),
        "VolumeDriver.Create" => match body["Opts"]["fail"].as_str() {
            Some(why) => fail(why),
            None => {
                std::fs::create_dir_all(&vol).unwrap();
                ok(json!({"Err": ""}))
            }
        },
        "VolumeDriver.Remove" if vol.join("busy").exists() => ok(json!({"Err": "volume is busy"})),
        "VolumeDriver.Remove" => {
            let _ = std::fs::remove_dir_all(&vol);
            ok(json!({"Err": ""}))
        }
        "VolumeDriver.Mount" if name.starts_with("nomount") => fail("mount refused"),
        "VolumeDriver.Mount" | "VolumeDriver.Path" => ok(json!({"Mountpoint": mountpoint})),
        "VolumeDriver.Unmount" => ok(json!({"Err": ""})),
        "VolumeDriver.Get" if vol.is_dir() => ok(json!({"Volume": {
            "Name": name, "Mountpoint": mountpoint, "Status": {"state": "ok"}
        }})),
        "VolumeDriver.Get" => fail("no such volume"),
        "VolumeDriver.List" => {
            let mut names: Vec<String> = std::fs::read_dir(dir)
                .unwrap()
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect();
            names.sort();
            let volumes: Vec<Value> = names
                .iter()
                .map(|n| json!({"Name": n, "Mountpoint": dir.join(n)}))
                .collect();
            ok(json!({"Volumes": volumes}))
        }
        "VolumeDriver.Capabilities" => ok(json!({"Capabilities": {"Scope": "global"}})),
        _ => (404, json!({"Err": "unknown method"})),
    }
}

/// The stderr of `docker ARGS`, which must fail.
fn refused(d: &Daemon, args: &[&str]) -> String {
    let out = d.docker(args);
    assert!(!out.status.success(), "docker {args:?} succeeded");
    text(&out).1
}

#[test]
fn plugin_volumes_are_made_mounted_listed_and_removed_by_their_plugin() {
    if skip() {
        return;
    }
    let d = Daemon::start();
    d.busybox("bb");
    let plugin = Plugin::unix(&d.plugins_dir().join("tplug.sock"));

    assert_eq!(
        d.ok(&["volume", "create", "--driver", "tplug", "-o", "size=1", "pv"])
            .trim(),
        "pv"
    );
    assert_eq!(plugin.calls("Plugin.Activate").len(), 1);
    assert!(plugin.wait_for(
        "VolumeDriver.Create",
        &json!({"Name": "pv", "Opts": {"size": "1"}})
    ));
    assert!(plugin.dir("pv").is_dir());
    let accepts: Vec<String> = plugin
        .calls
        .lock()
        .unwrap()
        .iter()
        .map(|c| c.accept.clone())
        .collect();
    assert!(accepts.iter().all(|a| a == MIME), "{accepts:?}");
    d.ok(&["volume", "create", "lv"]);

    // ls merges the plugin's List with the local volumes.
    let ls = d.ok(&["volume", "ls", "--format", "{{.Driver}} {{.Name}}"]);
    let mut lines: Vec<&str> = ls.lines().collect();
    lines.sort();
    assert_eq!(lines, ["local lv", "tplug pv"], "{ls}");
    assert_eq!(
        d.ok(&["volume", "ls", "-q", "--filter", "driver=tplug"])
            .trim(),
        "pv"
    );
    let inspect = d.ok(&[
        "volume",
        "inspect",
        "-f",
        "{{.Driver}} {{.Mountpoint}} {{.Scope}} {{.Status.state}} {{.Options.size}}",
        "pv",
    ]);
    let expected = format!("tplug {} global ok 1", plugin.dir("pv").display());
    assert_eq!(inspect.trim(), expected);

    // A container writes into it: the plugin mounted it for the container, and unmounts it
    // when the container stops.
    d.ok(&[
        "run",
        "--name",
        "writer",
        "-v",
        "pv:/data",
        "bb",
        "sh",
        "-c",
        "echo hi > /data/f",
    ]);
    assert_eq!(
        std::fs::read_to_string(plugin.dir("pv").join("f")).unwrap(),
        "hi\n"
    );
    let id = d
        .ok(&["inspect", "-f", "{{.Id}}", "writer"])
        .trim()
        .to_string();
    let call = json!({"Name": "pv", "ID": id});
    assert!(plugin.wait_for("VolumeDriver.Mount", &call));
    assert!(
        plugin.wait_for("VolumeDriver.Unmount", &call),
        "{:?}",
        plugin.calls("VolumeDriver.Unmount")
    );
    assert_eq!(plugin.calls("VolumeDriver.Mount").len(), 1);
    assert_eq!(plugin.calls("VolumeDriver.Unmount").len(), 1);
    let mounts = d.ok(&[
        "inspect",
        "-f",
        "{{range .Mounts}}{{.Name}} {{.Driver}} {{.Source}}{{end}}",
        "writer",
    ]);
    assert_eq!(
        mounts.trim(),
        format!("pv tplug {}", plugin.dir("pv").display())
    );
    // Started again: mounted again.
    d.ok(&["start", "-a", "writer"]);
    assert!(plugin.wait_for("VolumeDriver.Unmount", &call));
    let deadline = Instant::now() + Duration::from_secs(10);
    while plugin.calls("VolumeDriver.Unmount").len() < 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(plugin.calls("VolumeDriver.Mount").len(), 2);
    assert_eq!(plugin.calls("VolumeDriver.Unmount").len(), 2);

    // Volumes made on the fly with a driver: `--mount volume-driver=` and `--volume-driver`.
    d.ok(&[
        "run",
        "--rm",
        "--mount",
        "type=volume,src=mv,dst=/m,volume-driver=tplug,volume-opt=k=v",
        "bb",
        "sh",
        "-c",
        "echo m > /m/g",
    ]);
    assert!(plugin.wait_for(
        "VolumeDriver.Create",
        &json!({"Name": "mv", "Opts": {"k": "v"}})
    ));
    assert_eq!(
        std::fs::read_to_string(plugin.dir("mv").join("g")).unwrap(),
        "m\n"
    );
    d.ok(&[
        "run",
        "--rm",
        "-v",
        "vd:/v",
        "--volume-driver",
        "tplug",
        "bb",
        "touch",
        "/v/t",
    ]);
    assert!(plugin.dir("vd").join("t").exists());
    assert_eq!(
        d.ok(&["volume", "inspect", "-f", "{{.Driver}}", "vd"])
            .trim(),
        "tplug"
    );
    // An anonymous volume of the driver goes with its `--rm` container, through `Remove`.
    d.ok(&[
        "run",
        "--rm",
        "--volume-driver",
        "tplug",
        "-v",
        "/anon",
        "bb",
        "touch",
        "/anon/a",
    ]);
    let anon = plugin.calls("VolumeDriver.Create").last().unwrap()["Name"].clone();
    assert_eq!(anon.as_str().unwrap().len(), 64, "{anon}");
    assert!(plugin.wait_for("VolumeDriver.Remove", &json!({"Name": anon})));
    let info = d.ok(&["info", "-f", "{{json .Plugins.Volume}}"]);
    assert_eq!(info.trim(), r#"["local","tplug"]"#);

    // Kept as the plugin's across a daemon restart (and the plugin activated again).
    let mut d = d;
    d.stop();
    d.spawn();
    assert_eq!(
        d.ok(&["volume", "inspect", "-f", "{{.Driver}}", "pv"])
            .trim(),
        "tplug"
    );
    let read = d.ok(&["run", "--rm", "-v", "pv:/data", "bb", "cat", "/data/f"]);
    assert_eq!(read.trim(), "hi");

    // rm: refused while a container uses it, then the plugin's Remove.
    let err = refused(&d, &["volume", "rm", "pv"]);
    assert!(
        err.contains(&format!("remove pv: volume is in use - [{id}]")),
        "{err}"
    );
    d.ok(&["rm", "writer"]);
    d.ok(&["volume", "rm", "pv", "mv", "vd"]);
    assert!(plugin.wait_for("VolumeDriver.Remove", &json!({"Name": "pv"})));
    assert!(!plugin.dir("pv").exists());
    assert_eq!(d.ok(&["volume", "ls", "-q"]).trim(), "lv");
}

#[test]
fn plugin_errors_reach_the_user_in_dockerds_words() {
    if skip() {
        return;
    }
    let d = Daemon::start();
    d.busybox("bb");
    let plugin = Plugin::unix(&d.plugins_dir().join("tplug.sock"));

    // A non-200 answer: `METHOD: Err`.
    let err = refused(
        &d,
        &[
            "volume",
            "create",
            "-d",
            "tplug",
            "-o",
            "fail=disk full",
            "bad",
        ],
    );
    assert!(
        err.contains("Error response from daemon: create bad: VolumeDriver.Create: disk full"),
        "{err}"
    );
    assert_eq!(d.ok(&["volume", "ls", "-q"]).trim(), "");
    d.ok(&["volume", "create", "-d", "tplug", "nomount1"]);
    let err = refused(
        &d,
        &["run", "--name", "cc", "-v", "nomount1:/x", "bb", "true"],
    );
    assert!(
        err.contains("error while mounting volume '': VolumeDriver.Mount: mount refused"),
        "{err}"
    );
    assert_eq!(
        d.ok(&["inspect", "-f", "{{.State.Running}}", "cc"]).trim(),
        "false"
    );
    assert!(plugin.calls("VolumeDriver.Unmount").is_empty());

    // A 200 answer with an `Err`: the Err alone.
    d.ok(&["volume", "create", "-d", "tplug", "busy"]);
    std::fs::write(plugin.dir("busy").join("busy"), "").unwrap();
    let err = refused(&d, &["volume", "rm", "busy"]);
    assert!(
        err.contains("Error response from daemon: remove busy: volume is busy"),
        "{err}"
    );
    assert_eq!(
        d.ok(&["volume", "inspect", "-f", "{{.Driver}}", "busy"])
            .trim(),
        "tplug"
    );

    // A volume the plugin lost is no more.
    std::fs::remove_dir_all(plugin.dir("busy")).unwrap();
    let err = refused(&d, &["volume", "inspect", "busy"]);
    assert!(err.contains("no such volume"), "{err}");

    // Another driver for an existing name is a conflict.
    let err = refused(&d, &["volume", "create", "nomount1"]);
    assert!(
        err.contains("create nomount1: driver 'tplug' already has volume 'nomount1': volume name must be unique"),
        "{err}"
    );

    // A plugin that is not there.
    let missing = "error looking up volume plugin nope: plugin \"nope\" not found";
    let err = refused(&d, &["volume", "create", "-d", "nope", "x"]);
    assert!(err.contains(missing), "{err}");
    let err = refused(
        &d,
        &[
            "run",
            "--rm",
            "--pull",
            "never",
            "-v",
            "yy:/y",
            "--volume-driver",
            "nope",
            "bb",
            "true",
        ],
    );
    assert!(err.contains(missing), "{err}");
    let mut names: Vec<String> = d
        .ok(&["volume", "ls", "-q"])
        .lines()
        .map(String::from)
        .collect();
    names.sort();
    assert_eq!(names, ["nomount1"]);
}

#[test]
fn plugins_are_found_by_their_spec_files_and_subdirectories() {
    if skip() {
        return;
    }
    let d = Daemon::start();
    d.busybox("bb");
    let dir = d.plugins_dir();
    // NAME/NAME.sock; NAME.spec with tcp://; NAME.json with a unix socket elsewhere.
    let sub = Plugin::unix(&dir.join("sub/sub.sock"));
    let (tcp, port) = Plugin::tcp();
    std::fs::write(dir.join("tcp.spec"), format!("tcp://127.0.0.1:{port}\n")).unwrap();
    let elsewhere = d.dir.join("elsewhere.sock");
    let js = Plugin::unix(&elsewhere);
    std::fs::write(
        dir.join("js.json"),
        json!({"Name": "js", "Addr": format!("unix://{}", elsewhere.display())}).to_string(),
    )
    .unwrap();
    let mut drivers = BTreeMap::new();
    for (driver, plugin) in [("sub", &sub), ("tcp", &tcp), ("js", &js)] {
        let name = format!("v-{driver}");
        d.ok(&["volume", "create", "-d", driver, &name]);
        d.ok(&[
            "run",
            "--rm",
            "-v",
            &format!("{name}:/d"),
            "bb",
            "touch",
            "/d/here",
        ]);
        assert!(plugin.dir(&name).join("here").exists(), "{driver}");
        drivers.insert(name, driver.to_string());
    }
    let ls = d.ok(&["volume", "ls", "--format", "{{.Name}} {{.Driver}}"]);
    let listed: BTreeMap<String, String> = ls
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(n, dr)| (n.to_string(), dr.to_string()))
        .collect();
    assert_eq!(listed, drivers, "{ls}");
    // A volume a plugin made on its own is listed, and found by inspect.
    std::fs::create_dir(tcp.dir("outside")).unwrap();
    assert!(d
        .ok(&["volume", "ls", "-q"])
        .lines()
        .any(|l| l == "outside"));
    assert_eq!(
        d.ok(&["volume", "inspect", "-f", "{{.Driver}}", "outside"])
            .trim(),
        "tcp"
    );
}
