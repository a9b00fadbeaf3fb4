#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions unwrap too

//! Legacy links (`docker run --link NAME:ALIAS`) through the docker CLI and docker-compose
//! 1.29, as dockerd makes them: `/etc/hosts` entries and `ALIAS_...` variables on the default
//! bridge, the errors at create and start, `HostConfig.Links` and the link names of `docker
//! ps`, `docker rm --link`; on a user-defined network, an alias for that container alone.
//! And `--mac-address` (`Config.MacAddress`, an endpoint's `MacAddress`).

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{skip, text, Daemon};

/// `docker ARGS`, which must fail; its stderr.
fn fails(d: &Daemon, args: &[&str]) -> String {
    let out = d.docker(args);
    let (stdout, stderr) = text(&out);
    assert!(!out.status.success(), "docker {args:?} succeeded: {stdout}");
    stderr
}

#[test]
fn links_on_the_default_bridge_are_dockerds() {
    if skip() {
        return;
    }
    let d = Daemon::start();
    d.busybox("bb:local");
    d.ok(&[
        "run",
        "-d",
        "--name",
        "db",
        "--hostname",
        "dbhost",
        "-e",
        "SECRET=s3",
        "--expose",
        "80",
        "--expose",
        "81",
        "bb:local",
        "sleep",
        "300",
    ]);
    let ip = d.ip_on("db", "bridge");

    // The alias, the hostname and the name in /etc/hosts; dockerd's variables.
    let out = d.ok(&[
        "run",
        "--rm",
        "--name",
        "web",
        "--link",
        "db:database",
        "bb:local",
        "sh",
        "-c",
        "cat /etc/hosts; env; ping -c 1 -W 2 database >/dev/null && echo PING-OK",
    ]);
    assert!(
        out.lines()
            .any(|l| l == format!("{ip}\tdatabase dbhost db")),
        "{out}"
    );
    for want in [
        format!("DATABASE_PORT=tcp://{ip}:80"),
        format!("DATABASE_PORT_80_TCP=tcp://{ip}:80"),
        format!("DATABASE_PORT_80_TCP_ADDR={ip}"),
        "DATABASE_PORT_80_TCP_PORT=80".to_string(),
        "DATABASE_PORT_80_TCP_PROTO=tcp".to_string(),
        format!("DATABASE_PORT_81_TCP=tcp://{ip}:81"),
        format!("DATABASE_PORT_80_TCP_START=tcp://{ip}:80"),
        format!("DATABASE_PORT_80_TCP_END=tcp://{ip}:81"),
        "DATABASE_NAME=/web/database".to_string(),
        "DATABASE_ENV_SECRET=s3".to_string(),
        "PING-OK".to_string(),
    ] {
        assert!(out.lines().any(|l| l == want), "no {want} in:\n{out}");
    }
    assert!(!out.contains("DATABASE_ENV_PATH"), "{out}");

    // A link to a container that does not exist: refused at create, with dockerd's words.
    let err = fails(&d, &["create", "--link", "nope:x", "bb:local", "true"]);
    assert!(err.contains("could not get container for nope"), "{err}");
    let err = fails(
        &d,
        &[
            "create",
            "--network",
            "host",
            "--link",
            "db:x",
            "bb:local",
            "true",
        ],
    );
    assert!(
        err.contains("conflicting options: host type networking can't be used with links"),
        "{err}"
    );

    // Inspect shows the link as dockerd stores it; `ps` lists the link name.
    d.ok(&[
        "run",
        "-d",
        "--name",
        "web2",
        "--link",
        "db:database",
        "bb:local",
        "sleep",
        "300",
    ]);
    let links = d.ok(&["inspect", "-f", "{{json .HostConfig.Links}}", "web2"]);
    assert_eq!(links.trim(), r#"["/db:/web2/database"]"#);
    // An exec gets the links' variables too, as the container's process did.
    let env = d.ok(&["exec", "web2", "env"]);
    assert!(
        env.lines().any(|l| l == "DATABASE_NAME=/web2/database"),
        "{env}"
    );
    let names = d.ok(&[
        "ps",
        "--no-trunc",
        "--filter",
        "name=db",
        "--format",
        "{{.Names}}",
    ]);
    assert_eq!(names.trim(), "db,web2/database");

    // A linked container that does not run: the start fails.
    d.ok(&["stop", "-t", "0", "web2", "db"]);
    let err = fails(&d, &["start", "web2"]);
    assert!(
        err.contains("Cannot link to a non running container: /db AS /web2/database"),
        "{err}"
    );

    // The linked container starts again: so does its parent, and sees it.
    d.ok(&["start", "db"]);
    let ip = d.ip_on("db", "bridge");
    d.ok(&["start", "web2"]);
    let hosts = d.ok(&["exec", "web2", "cat", "/etc/hosts"]);
    assert!(
        hosts
            .lines()
            .any(|l| l == format!("{ip}\tdatabase dbhost db")),
        "{hosts}"
    );

    // `docker rm --link`: the link goes, the containers stay; dockerd's errors.
    d.ok(&["rm", "--link", "/web2/database"]);
    let links = d.ok(&["inspect", "-f", "{{json .HostConfig.Links}}", "web2"]);
    assert_eq!(links.trim(), "null");
    d.ok(&["inspect", "db"]);
    let err = fails(&d, &["rm", "--link", "/web2/database"]);
    assert!(err.contains("No such container: web2/database"), "{err}");
    let err = fails(&d, &["rm", "--link", "db"]);
    assert!(
        err.contains("Conflict, cannot remove the default link name of the container"),
        "{err}"
    );
    d.ok(&["stop", "-t", "0", "web2"]);
    d.ok(&["start", "web2"]);
    d.ok(&["rm", "-f", "web2", "db"]);
}

#[test]
fn a_link_on_a_user_network_is_an_alias_for_that_container_alone() {
    if skip() {
        return;
    }
    let d = Daemon::start();
    d.busybox("bb:local");
    d.ok(&["network", "create", "ln1"]);
    d.ok(&[
        "run",
        "-d",
        "--name",
        "db",
        "--network",
        "ln1",
        "bb:local",
        "sleep",
        "300",
    ]);
    let ip = d.ip_on("db", "ln1");
    d.ok(&[
        "run",
        "-d",
        "--name",
        "web",
        "--network",
        "ln1",
        "--link",
        "db:dbalias",
        "bb:local",
        "sleep",
        "300",
    ]);
    let out = d.ok(&["exec", "web", "nslookup", "dbalias"]);
    assert!(out.contains(&ip), "{out}");
    // Not a legacy link: nothing in HostConfig.Links (as dockerd), nothing in /etc/hosts.
    let links = d.ok(&["inspect", "-f", "{{json .HostConfig.Links}}", "web"]);
    assert_eq!(links.trim(), "null");
    let hosts = d.ok(&["exec", "web", "cat", "/etc/hosts"]);
    assert!(!hosts.contains("dbalias"), "{hosts}");
    let endpoint = d.ok(&[
        "inspect",
        "-f",
        "{{json (index .NetworkSettings.Networks \"ln1\").Links}}",
        "web",
    ]);
    assert_eq!(endpoint.trim(), r#"["db:dbalias"]"#);
    // Another container on the network does not know the alias.
    let other = d.docker(&[
        "run",
        "--rm",
        "--network",
        "ln1",
        "bb:local",
        "nslookup",
        "dbalias",
    ]);
    assert!(!other.status.success(), "{}", text(&other).0);
    d.ok(&["rm", "-f", "web", "db"]);
    d.ok(&["network", "rm", "ln1"]);
}

const COMPOSE: &str = "/usr/bin/docker-compose";

fn compose(d: &Daemon, dir: &Path, project: &str, args: &[&str]) -> Output {
    assert!(
        Path::new(COMPOSE).exists(),
        "docker-compose is not installed (apt-get install docker-compose)"
    );
    Command::new("timeout")
        .args(["120", COMPOSE, "--no-ansi", "-p", project])
        .args(args)
        .current_dir(dir)
        .env("DOCKER_HOST", format!("unix://{}", d.socket.display()))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .unwrap()
}

/// `docker exec CONTAINER wget -qO- URL`, tried until it answers or 20 s pass.
fn wget(d: &Daemon, container: &str, url: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let out = d.docker(&["exec", container, "wget", "-qO-", url]);
        let (stdout, stderr) = text(&out);
        if out.status.success() || Instant::now() > deadline {
            return stdout + &stderr;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn compose_links_reach_the_other_service_by_the_link_alias() {
    if skip() {
        return;
    }
    let d = Daemon::start();
    d.busybox("bb:local");
    let dir = tempfile::tempdir().unwrap();
    let project = format!("l{}", std::process::id());
    // Two services on the default bridge (legacy links), two on the project's network.
    let server = r#"["sh", "-c", "mkdir -p /w && echo served by $$HOSTNAME > /w/index.html && exec httpd -f -p 80 -h /w"]"#;
    std::fs::write(
        dir.path().join("docker-compose.yml"),
        format!(
            r#"version: "2"
services:
  db:
    image: bb:local
    network_mode: bridge
    hostname: legacydb
    command: {server}
  web:
    image: bb:local
    network_mode: bridge
    links: ["db:database"]
    command: ["sleep", "300"]
  store:
    image: bb:local
    hostname: userstore
    command: {server}
  app:
    image: bb:local
    links: ["store:backend"]
    command: ["sleep", "300"]
"#
        ),
    )
    .unwrap();
    let up = compose(&d, dir.path(), &project, &["up", "-d"]);
    let (stdout, stderr) = text(&up);
    assert!(
        up.status.success(),
        "up failed: {stdout}{stderr}\n--- berthd log:\n{}",
        d.log()
    );
    let web = format!("{project}_web_1");
    let app = format!("{project}_app_1");
    let got = wget(&d, &web, "http://database/index.html");
    assert!(got.contains("served by legacydb"), "{got}");
    let got = wget(&d, &app, "http://backend/index.html");
    assert!(got.contains("served by userstore"), "{got}");
    let env = d.ok(&["exec", &web, "sh", "-c", "tr '\\0' '\\n' < /proc/1/environ"]);
    assert!(
        env.lines()
            .any(|l| l == format!("DATABASE_NAME=/{web}/database")),
        "{env}"
    );
    let down = compose(&d, dir.path(), &project, &["down", "-t", "0"]);
    assert!(down.status.success(), "{:?}", text(&down));
}

/// `POST /v1.43/containers/create?name=NAME` with `body` (through curl: the docker CLI 28
/// sends `--mac-address` per network, which needs API 1.44); the body and the status.
fn api_create(d: &Daemon, name: &str, body: &str) -> (String, String) {
    let out = Command::new("curl")
        .args(["-s", "-m", "30", "-w", "\n%{http_code}", "--unix-socket"])
        .arg(&d.socket)
        .args(["-H", "Content-Type: application/json", "-d", body])
        .arg(format!("http://x/v1.43/containers/create?name={name}"))
        .output()
        .unwrap();
    let all = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = all.rsplit_once('\n').unwrap_or((&all, ""));
    (body.to_string(), code.to_string())
}

#[test]
fn mac_addresses_are_honoured_and_bad_ones_refused() {
    if skip() {
        return;
    }
    let d = Daemon::start();
    d.busybox("bb:local");
    // `Config.MacAddress` (API < 1.44) on the default bridge.
    let (body, code) = api_create(
        &d,
        "m1",
        r#"{"Image":"bb:local","Cmd":["sleep","300"],"MacAddress":"02:00:00:00:00:42"}"#,
    );
    assert_eq!(code, "201", "{body}");
    d.ok(&["start", "m1"]);
    let out = d.ok(&["exec", "m1", "cat", "/sys/class/net/eth0/address"]);
    assert_eq!(out.trim(), "02:00:00:00:00:42");
    let shown = d.ok(&[
        "inspect",
        "-f",
        "{{.NetworkSettings.MacAddress}} {{(index .NetworkSettings.Networks \"bridge\").MacAddress}} {{.Config.MacAddress}}",
        "m1",
    ]);
    assert_eq!(
        shown.trim(),
        "02:00:00:00:00:42 02:00:00:00:00:42 02:00:00:00:00:42"
    );
    // Again after a restart.
    d.ok(&["restart", "-t", "0", "m1"]);
    let out = d.ok(&["exec", "m1", "cat", "/sys/class/net/eth0/address"]);
    assert_eq!(out.trim(), "02:00:00:00:00:42");
    // An endpoint's `MacAddress` on a user-defined network (upper case, `-`: as Go reads it).
    d.ok(&["network", "create", "macnet"]);
    let (body, code) = api_create(
        &d,
        "m2",
        r#"{"Image":"bb:local","Cmd":["sleep","300"],"HostConfig":{"NetworkMode":"macnet"},"NetworkingConfig":{"EndpointsConfig":{"macnet":{"MacAddress":"02-00-00-00-01-0A"}}}}"#,
    );
    assert_eq!(code, "201", "{body}");
    d.ok(&["start", "m2"]);
    let out = d.ok(&["exec", "m2", "cat", "/sys/class/net/eth0/address"]);
    assert_eq!(out.trim(), "02:00:00:00:01:0a");
    let shown = d.ok(&[
        "inspect",
        "-f",
        "{{(index .NetworkSettings.Networks \"macnet\").MacAddress}}",
        "m2",
    ]);
    assert_eq!(shown.trim(), "02:00:00:00:01:0a");

    // Refused at create as dockerd refuses them.
    let (body, code) = api_create(
        &d,
        "bad1",
        r#"{"Image":"bb:local","Cmd":["true"],"MacAddress":"zz:00"}"#,
    );
    assert_eq!(code, "400", "{body}");
    assert!(body.contains("invalid MAC address zz:00"), "{body}");
    let (body, code) = api_create(
        &d,
        "bad2",
        r#"{"Image":"bb:local","Cmd":["true"],"HostConfig":{"NetworkMode":"macnet"},"NetworkingConfig":{"EndpointsConfig":{"macnet":{"MacAddress":"02:00:00:00:01"}}}}"#,
    );
    assert_eq!(code, "400", "{body}");
    assert!(
        body.contains("invalid MAC address 02:00:00:00:01"),
        "{body}"
    );
    let (body, code) = api_create(
        &d,
        "bad3",
        r#"{"Image":"bb:local","Cmd":["true"],"MacAddress":"02:00:00:00:00:01","HostConfig":{"NetworkMode":"host"}}"#,
    );
    assert_eq!(code, "400", "{body}");
    assert!(
        body.contains("conflicting options: mac-address and the network mode"),
        "{body}"
    );
    // The docker CLI 28 sends `--mac-address` per network (API 1.44): it says so itself.
    let out = d.docker(&[
        "run",
        "--rm",
        "--mac-address",
        "02:00:00:00:00:43",
        "bb:local",
        "true",
    ]);
    assert!(!out.status.success());
    d.ok(&["rm", "-f", "m1", "m2"]);
    d.ok(&["network", "rm", "macnet"]);
}
