//! Route coverage: every path and method of the Engine API 1.43 (moby/moby
//! `docs/api/v1.43.yaml`) reaches a handler of berthd (whatever it then answers for the made-up
//! objects this test names), or answers as a dockerd without the feature: swarm mode as a node
//! outside any swarm, plugins as a daemon with none installed. Routes berthd lacks are listed in
//! [`MISSING`]: the test fails if one of them starts to answer (take it off the list) or if any
//! other route is missing. Then the docker CLI and the Python SDK meet the same answers.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions unwrap too

mod common;

use std::process::Command;

use common::{python_sdk, skip, text, Daemon};

/// Every route of API 1.43: method and path, `{}` where an id or a name goes.
const ROUTES: &[(&str, &str)] = &[
    ("GET", "/containers/json"),
    ("POST", "/containers/create"),
    ("GET", "/containers/{}/json"),
    ("GET", "/containers/{}/top"),
    ("GET", "/containers/{}/logs"),
    ("GET", "/containers/{}/changes"),
    ("GET", "/containers/{}/export"),
    ("GET", "/containers/{}/stats?stream=false"),
    ("POST", "/containers/{}/resize"),
    ("POST", "/containers/{}/start"),
    ("POST", "/containers/{}/stop"),
    ("POST", "/containers/{}/restart"),
    ("POST", "/containers/{}/kill"),
    ("POST", "/containers/{}/update"),
    ("POST", "/containers/{}/rename?name=x"),
    ("POST", "/containers/{}/pause"),
    ("POST", "/containers/{}/unpause"),
    ("POST", "/containers/{}/attach"),
    ("GET", "/containers/{}/attach/ws"),
    ("POST", "/containers/{}/wait"),
    ("DELETE", "/containers/{}"),
    ("HEAD", "/containers/{}/archive?path=/"),
    ("GET", "/containers/{}/archive?path=/"),
    ("PUT", "/containers/{}/archive?path=/"),
    ("POST", "/containers/prune"),
    ("GET", "/images/json"),
    ("POST", "/build"),
    ("POST", "/build/prune"),
    ("POST", "/images/create?fromImage=127.0.0.1:1/none&tag=x"),
    ("GET", "/images/{}/json"),
    ("GET", "/images/{}/history"),
    ("POST", "/images/{}/push"),
    ("POST", "/images/{}/tag?repo=x"),
    ("DELETE", "/images/{}"),
    ("GET", "/images/search?term=x"),
    ("POST", "/images/prune"),
    ("POST", "/auth"),
    ("GET", "/info"),
    ("GET", "/version"),
    ("GET", "/_ping"),
    ("HEAD", "/_ping"),
    ("POST", "/commit?container={}"),
    ("GET", "/events?since=0&until=1"),
    ("GET", "/system/df"),
    ("GET", "/images/{}/get"),
    ("GET", "/images/get?names={}"),
    ("POST", "/images/load"),
    ("POST", "/containers/{}/exec"),
    ("POST", "/exec/{}/start"),
    ("POST", "/exec/{}/resize"),
    ("GET", "/exec/{}/json"),
    ("GET", "/volumes"),
    ("POST", "/volumes/create"),
    ("GET", "/volumes/{}"),
    ("PUT", "/volumes/{}"),
    ("DELETE", "/volumes/{}"),
    ("POST", "/volumes/prune"),
    ("GET", "/networks"),
    ("GET", "/networks/{}"),
    ("DELETE", "/networks/{}"),
    ("POST", "/networks/create"),
    ("POST", "/networks/{}/connect"),
    ("POST", "/networks/{}/disconnect"),
    ("POST", "/networks/prune"),
    ("GET", "/plugins"),
    ("GET", "/plugins/privileges?remote=x"),
    ("POST", "/plugins/pull?remote=x"),
    ("GET", "/plugins/{}/json"),
    ("DELETE", "/plugins/{}"),
    ("POST", "/plugins/{}/enable"),
    ("POST", "/plugins/{}/disable"),
    ("POST", "/plugins/{}/upgrade?remote=x"),
    ("POST", "/plugins/create?name=x"),
    ("POST", "/plugins/{}/push"),
    ("POST", "/plugins/{}/set"),
    ("GET", "/nodes"),
    ("GET", "/nodes/{}"),
    ("DELETE", "/nodes/{}"),
    ("POST", "/nodes/{}/update"),
    ("GET", "/swarm"),
    ("POST", "/swarm/init"),
    ("POST", "/swarm/join"),
    ("POST", "/swarm/leave"),
    ("POST", "/swarm/update"),
    ("GET", "/swarm/unlockkey"),
    ("POST", "/swarm/unlock"),
    ("GET", "/services"),
    ("POST", "/services/create"),
    ("GET", "/services/{}"),
    ("DELETE", "/services/{}"),
    ("POST", "/services/{}/update"),
    ("GET", "/services/{}/logs"),
    ("GET", "/tasks"),
    ("GET", "/tasks/{}"),
    ("GET", "/tasks/{}/logs"),
    ("GET", "/secrets"),
    ("POST", "/secrets/create"),
    ("GET", "/secrets/{}"),
    ("DELETE", "/secrets/{}"),
    ("POST", "/secrets/{}/update"),
    ("GET", "/configs"),
    ("POST", "/configs/create"),
    ("GET", "/configs/{}"),
    ("DELETE", "/configs/{}"),
    ("POST", "/configs/{}/update"),
    ("GET", "/distribution/{}/json"),
    ("POST", "/session"),
];

/// Routes berthd answers as a dockerd without their feature does (404, "page not found"):
/// `POST /session` is BuildKit's (its gRPC session); Berth builds with the classic builder,
/// which the docker CLI uses without it (`DOCKER_BUILDKIT=0`, or a daemon whose `/_ping` says
/// `Builder-Version: 1`).
const MISSING: &[(&str, &str)] = &[("POST", "/session")];

/// `method path` on berthd's socket: the status and the body.
fn request(d: &Daemon, method: &str, path: &str) -> (u16, String) {
    let socket = d.socket.display().to_string();
    let mut cmd = Command::new("curl");
    cmd.args(["-s", "--max-time", "20", "--unix-socket", &socket])
        .args(["-w", "\n%{http_code}"]);
    if method == "HEAD" {
        cmd.arg("-I");
    } else {
        cmd.args(["-X", method]);
    }
    if matches!(method, "POST" | "PUT") {
        cmd.args(["-H", "Content-Type: application/json", "-d", "{}"]);
    }
    let out = cmd.arg(format!("http://d/v1.43{path}")).output().unwrap();
    let (stdout, stderr) = text(&out);
    let (body, code) = stdout.trim_end().rsplit_once('\n').unwrap_or(("", &stdout));
    let code = code
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("{method} {path}: {stdout}{stderr}"));
    (code, body.trim().to_string())
}

fn is_swarm(path: &str) -> bool {
    [
        "/swarm",
        "/nodes",
        "/services",
        "/tasks",
        "/secrets",
        "/configs",
    ]
    .iter()
    .any(|p| path == *p || path.starts_with(&format!("{p}/")) || path.starts_with(&format!("{p}?")))
}

#[test]
fn every_route_of_api_1_43_answers() {
    if skip() {
        return;
    }
    let d = Daemon::start();
    let mut missing = Vec::new();
    for (i, (method, template)) in ROUTES.iter().enumerate() {
        let path = template.replace("{}", &format!("nonexistent-{i}"));
        let (code, body) = request(&d, method, &path);
        let not_routed = code == 404 && body.contains("page not found");
        if is_swarm(&path) {
            let message = if path == "/swarm/leave" {
                "This node is not part of a swarm"
            } else if matches!(
                path.as_str(),
                "/swarm/init" | "/swarm/join" | "/swarm/unlock"
            ) {
                "swarm mode is not available"
            } else {
                "This node is not a swarm manager."
            };
            assert_eq!(code, 503, "{method} {path}: {body}");
            assert!(body.contains(message), "{method} {path}: {body}");
            continue;
        }
        if not_routed {
            missing.push((*method, *template));
        }
        assert!(
            code < 500 || code == 501 || !not_routed,
            "{method} {path}: {code} {body}"
        );
    }
    assert_eq!(missing, MISSING, "routes berthd does not serve");
    // Only swarm's cluster volumes can be updated.
    let (code, body) = request(&d, "PUT", "/volumes/v1?version=1");
    assert_eq!(code, 503);
    assert!(
        body.contains("volume update only valid for cluster volumes, but swarm is unavailable"),
        "{body}"
    );
    // Plugins: none installed.
    assert_eq!(request(&d, "GET", "/plugins"), (200, "[]".to_string()));
    let (code, body) = request(&d, "GET", "/plugins/vieux/sshfs:latest/json");
    assert_eq!(code, 404);
    assert!(
        body.contains(r#"plugin \"vieux/sshfs:latest\" not found"#),
        "{body}"
    );
}

#[test]
fn clients_meet_dockerds_answers_outside_a_swarm() {
    if skip() {
        return;
    }
    let d = Daemon::start();
    let out = d.docker(&["swarm", "leave"]);
    let (_, stderr) = text(&out);
    assert!(!out.status.success());
    assert!(
        stderr.contains("This node is not part of a swarm"),
        "{stderr}"
    );
    let out = d.docker(&["node", "ls"]);
    let (_, stderr) = text(&out);
    assert!(
        stderr.contains("This node is not a swarm manager."),
        "{stderr}"
    );
    assert_eq!(d.ok(&["plugin", "ls", "--format", "{{.Name}}"]), "");
    // The Python SDK's cleanup leaves with force, which takes a 503 as done (a 404 raised);
    // without force the 503 is an APIError.
    let out = python_sdk(
        &d,
        "import docker\n\
         c = docker.from_env()\n\
         print(c.swarm.leave(force=True))\n\
         try:\n    c.swarm.leave()\nexcept docker.errors.APIError as e:\n    print(e.response.status_code, e.explanation)\n\
         print(c.plugins.list())\n",
    );
    assert_eq!(out, "True\n503 This node is not part of a swarm\n[]\n");
}

#[test]
fn the_python_sdk_saves_one_image_through_its_own_route() {
    if skip() {
        return;
    }
    let d = Daemon::start();
    d.busybox("bb:saved");
    // `Image.save()` is `GET /images/{name}/get`; `docker save` is `GET /images/get?names=`.
    let out = python_sdk(
        &d,
        "import docker, io, tarfile, json\n\
         c = docker.from_env()\n\
         data = b''.join(c.images.get('bb:saved').save())\n\
         t = tarfile.open(fileobj=io.BytesIO(data))\n\
         m = json.load(t.extractfile('manifest.json'))\n\
         print(m[0]['RepoTags'], len(m[0]['Layers']))\n",
    );
    assert_eq!(out, "['bb:saved'] 1\n");
}
