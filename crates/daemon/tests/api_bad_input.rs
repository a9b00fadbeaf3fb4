#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions unwrap too

//! Bad requests at the wire level: raw HTTP/1.1 written by hand on the Unix socket, as a
//! client that is not the docker CLI would send them. Each answer is checked for Docker's
//! status and `{"message": ...}` body, and the containers and images are checked unchanged.

mod common;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use common::{skip, Daemon};
use serde_json::Value;

/// One answer: status, headers (lower-case names), body.
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", String::from_utf8_lossy(&self.body)))
    }

    /// The `message` of an error body, which must be JSON.
    fn message(&self) -> String {
        let ct = self.header("content-type").unwrap_or_default();
        assert_eq!(ct, "application/json", "error content type");
        self.json()["message"]
            .as_str()
            .unwrap_or_else(|| panic!("no message: {}", self.json()))
            .to_string()
    }

    fn header(&self, name: &str) -> Option<String> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    }
}

/// Sends `method path` with `body` (JSON) and reads the answer to the end (`Connection:
/// close`), within 20 s.
fn request(d: &Daemon, method: &str, path: &str, body: Option<&[u8]>) -> Answer {
    let mut s = UnixStream::connect(&d.socket).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: api.moby.localhost\r\nUser-Agent: raw-test\r\nConnection: close\r\n");
    if let Some(b) = body {
        req.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            b.len()
        ));
    } else if method == "POST" {
        req.push_str("Content-Length: 0\r\n");
    }
    req.push_str("\r\n");
    let mut bytes = req.into_bytes();
    bytes.extend_from_slice(body.unwrap_or_default());
    s.write_all(&bytes).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    parse(&raw)
}

fn parse(raw: &[u8]) -> Answer {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no header end: {:?}", String::from_utf8_lossy(raw)));
    let head = String::from_utf8_lossy(&raw[..end]).into_owned();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap();
    let mut parts = status_line.splitn(3, ' ');
    assert_eq!(parts.next(), Some("HTTP/1.1"), "{status_line}");
    let status: u16 = parts.next().unwrap().parse().unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let rest = &raw[end + 4..];
    let chunked = headers
        .iter()
        .any(|(n, v)| n == "transfer-encoding" && v.eq_ignore_ascii_case("chunked"));
    let body = if chunked {
        dechunk(rest)
    } else {
        rest.to_vec()
    };
    Answer {
        status,
        headers,
        body,
    }
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = data.windows(2).position(|w| w == b"\r\n") {
        let size_text = String::from_utf8_lossy(&data[..eol]).into_owned();
        let size = usize::from_str_radix(size_text.split(';').next().unwrap().trim(), 16).unwrap();
        data = &data[eol + 2..];
        if size == 0 {
            break;
        }
        out.extend_from_slice(&data[..size]);
        data = &data[size + 2..];
    }
    out
}

/// What must not change: (id, names, state) of every container, (id, tags) of every image.
fn snapshot(d: &Daemon) -> (Vec<String>, Vec<String>) {
    let a = request(d, "GET", "/v1.43/containers/json?all=1", None);
    assert_eq!(a.status, 200);
    let mut containers: Vec<String> = a
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|c| format!("{} {} {}", c["Id"], c["Names"], c["State"]))
        .collect();
    containers.sort();
    let a = request(d, "GET", "/v1.43/images/json", None);
    assert_eq!(a.status, 200);
    let mut images: Vec<String> = a
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|i| format!("{} {}", i["Id"], i["RepoTags"]))
        .collect();
    images.sort();
    (containers, images)
}

/// A daemon with busybox, a running container `live` and a stopped one `dead`.
fn setup() -> (Daemon, String, String) {
    let d = Daemon::start();
    d.busybox("bb:local");
    let live = d.ok(&["run", "-d", "--name", "live", "bb:local", "sleep", "100"]);
    let dead = d.ok(&["create", "--name", "dead", "bb:local", "true"]);
    (d, live.trim().to_string(), dead.trim().to_string())
}

#[test]
fn malformed_create_bodies_are_400_with_a_message() {
    if skip() {
        return;
    }
    let (d, _, _) = setup();
    let before = snapshot(&d);
    let bad: [(&[u8], &str); 5] = [
        (
            b"xyz",
            "invalid character 'x' looking for beginning of value",
        ),
        (
            b"{\"Image\": \"bb:local\", ",
            "unexpected end of JSON input",
        ),
        (b"{\"Image\": \"bb:local\"} trailing", "invalid JSON"),
        (b"{\"Image\": 5}", "invalid JSON"),
        (
            b"{\"Image\": \"bb:local\", \"Cmd\": \"not a list\"}",
            "invalid JSON",
        ),
    ];
    for (body, want) in bad {
        let a = request(&d, "POST", "/v1.43/containers/create?name=bad", Some(body));
        let shown = String::from_utf8_lossy(body);
        assert_eq!(
            a.status,
            400,
            "{shown}: {:?}",
            String::from_utf8_lossy(&a.body)
        );
        let message = a.message();
        assert!(message.starts_with("invalid JSON: "), "{shown}: {message}");
        assert!(message.contains(want), "{shown}: {message}");
        assert_eq!(snapshot(&d), before, "after {shown}");
    }
    // Exec create too.
    let a = request(&d, "POST", "/v1.43/containers/live/exec", Some(b"{nope"));
    assert_eq!(a.status, 400);
    assert!(a.message().starts_with("invalid JSON: "));
    assert_eq!(snapshot(&d), before);
}

#[test]
fn create_with_an_unknown_image_is_404() {
    if skip() {
        return;
    }
    let (d, _, _) = setup();
    let before = snapshot(&d);
    let a = request(
        &d,
        "POST",
        "/v1.43/containers/create?name=x2",
        Some(br#"{"Image": "nosuch:img", "Cmd": ["true"]}"#),
    );
    assert_eq!(a.status, 404);
    assert_eq!(a.message(), "No such image: nosuch:img");
    assert_eq!(snapshot(&d), before);
}

#[test]
fn create_with_a_name_in_use_is_409() {
    if skip() {
        return;
    }
    let (d, live, dead) = setup();
    let before = snapshot(&d);
    for (name, id) in [("live", &live), ("dead", &dead), ("/dead", &dead)] {
        let a = request(
            &d,
            "POST",
            &format!("/v1.43/containers/create?name={name}"),
            Some(br#"{"Image": "bb:local", "Cmd": ["true"]}"#),
        );
        assert_eq!(a.status, 409, "{name}");
        let bare = name.trim_start_matches('/');
        assert_eq!(
            a.message(),
            format!(
                "Conflict. The container name \"/{bare}\" is already in use by container \"{id}\". You have to remove (or rename) that container to be able to reuse that name."
            )
        );
        assert_eq!(snapshot(&d), before, "{name}");
    }
}

#[test]
fn delete_of_a_running_container_is_409() {
    if skip() {
        return;
    }
    let (d, live, _) = setup();
    let before = snapshot(&d);
    for path in [
        "/v1.43/containers/live",
        "/v1.43/containers/live?force=0&v=1",
    ] {
        let a = request(&d, "DELETE", path, None);
        assert_eq!(a.status, 409, "{path}");
        // dockerd 20.10's words, as recorded in the wire reference.
        assert_eq!(
            a.message(),
            format!("You cannot remove a running container {live}. Stop the container before attempting removal or force remove")
        );
        assert_eq!(snapshot(&d), before, "{path}");
    }
    assert_eq!(
        d.ok(&["inspect", "--format", "{{.State.Running}}", "live"])
            .trim(),
        "true"
    );
}

#[test]
fn exec_into_a_stopped_container_is_409() {
    if skip() {
        return;
    }
    let (d, _, dead) = setup();
    let before = snapshot(&d);
    let body = br#"{"Cmd": ["true"], "AttachStdout": true, "AttachStderr": true}"#;
    for name in ["dead", &dead[..12]] {
        let a = request(
            &d,
            "POST",
            &format!("/v1.43/containers/{name}/exec"),
            Some(body),
        );
        assert_eq!(a.status, 409, "{name}");
        assert_eq!(a.message(), format!("Container {dead} is not running"));
        assert_eq!(snapshot(&d), before);
    }
    let a = request(&d, "POST", "/v1.43/containers/nope/exec", Some(body));
    assert_eq!(a.status, 404);
    assert_eq!(a.message(), "No such container: nope");
    assert_eq!(snapshot(&d), before);
}

#[test]
fn unknown_endpoints_are_404_page_not_found() {
    if skip() {
        return;
    }
    let (d, _, _) = setup();
    let before = snapshot(&d);
    for (method, path) in [
        ("GET", "/nope"),
        ("GET", "/v1.43/nope"),
        ("POST", "/v1.43/containers/live/nonsense"),
        ("GET", "/v1.43/containers/live/json/extra"),
        ("PUT", "/v1.43/images/json"),
        ("DELETE", "/v1.43/_ping"),
    ] {
        let a = request(&d, method, path, None);
        assert_eq!(a.status, 404, "{method} {path}");
        assert_eq!(a.message(), "page not found", "{method} {path}");
        assert_eq!(snapshot(&d), before, "{method} {path}");
    }
}

#[test]
fn a_query_with_raw_utf8_after_a_bad_escape_does_not_kill_the_daemon() {
    use std::io::{Read, Write};
    if common::skip() {
        return;
    }
    let d = common::Daemon::start();
    // `?all=%a` followed by the raw bytes of `é`: berthd sliced the query inside the character
    // and, built with panic=abort, died.
    let mut conn = std::os::unix::net::UnixStream::connect(&d.socket).unwrap();
    conn.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    let mut request = b"GET /containers/json?all=%a".to_vec();
    request.extend_from_slice(&[0xC3, 0xA9]);
    request.extend_from_slice(b" HTTP/1.1\r\nHost: d\r\nConnection: close\r\n\r\n");
    conn.write_all(&request).unwrap();
    let mut answer = Vec::new();
    let _ = conn.read_to_end(&mut answer);
    assert!(
        answer.starts_with(b"HTTP/1.1 "),
        "{}",
        String::from_utf8_lossy(&answer)
    );
    // Still there.
    d.ok(&["ps", "-a"]);
}

#[test]
fn an_unknown_log_driver_is_refused_at_create_as_dockerd_refuses_it() {
    if skip() {
        return;
    }
    let d = Daemon::start();
    d.busybox("busybox");
    let out = d.docker(&["run", "--log-driver", "asdf", "busybox", "true"]);
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(125), "{stderr}");
    assert!(
        stderr.contains("logger: no log driver named 'asdf' is registered"),
        "{stderr}"
    );
    assert_eq!(d.ok(&["ps", "-aq"]), "", "no container was made");
    // The CRI's own format (which writes where its option says) is not the Docker API's.
    let out = d.docker(&[
        "run",
        "--log-driver",
        "cri",
        "--log-opt",
        "path=/tmp/berth-not-written.log",
        "busybox",
        "true",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(
        stderr.contains("logger: no log driver named 'cri' is registered"),
        "{stderr}"
    );
    assert!(!std::path::Path::new("/tmp/berth-not-written.log").exists());
    // Drivers dockerd has are taken.
    d.ok(&["create", "--log-driver", "local", "busybox", "true"]);
}
