#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions unwrap too

//! Debian's docker-compose 1.29 (the Python one, on docker-py) against berthd: a project with
//! a web service (busybox httpd serving a file from a named volume, on a published port) and
//! a client that reaches it by its service name through the embedded DNS; `ps`, `logs`, and
//! `down`, which removes the containers and the network and keeps the volume.

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{free_port, http_get, skip, text, Daemon};

const COMPOSE: &str = "/usr/bin/docker-compose";

/// `docker-compose -p PROJECT ARGS` in `dir` against `d`, killed after 120 s.
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

fn compose_ok(d: &Daemon, dir: &Path, project: &str, args: &[&str]) -> String {
    let out = compose(d, dir, project, args);
    let (stdout, stderr) = text(&out);
    assert!(
        out.status.success(),
        "docker-compose {args:?} failed ({}): {stdout}{stderr}\n--- berthd log:\n{}",
        out.status,
        d.log()
    );
    stdout + &stderr
}

#[test]
fn a_two_service_project_comes_up_talks_by_service_name_and_goes_down() {
    if skip() {
        return;
    }
    let d = Daemon::start();
    d.busybox("bb:local");
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let project = format!("p{}", std::process::id());
    std::fs::write(
        dir.path().join("docker-compose.yml"),
        format!(
            r#"version: "3.8"
services:
  web:
    image: bb:local
    init: true
    command: ["sh", "-c", "[ -f /data/index.html ] || echo hello from web > /data/index.html; echo web up; exec httpd -f -p 8080 -h /data"]
    ports: ["{port}:8080"]
    volumes: [data:/data]
  client:
    image: bb:local
    init: true
    depends_on: [web]
    command: ["sh", "-c", "for i in $$(seq 100); do if wget -qO- http://web:8080/ > /tmp/got; then echo client got: $$(cat /tmp/got); break; fi; sleep 0.2; done; exec sleep 300"]
volumes:
  data: {{}}
"#
        ),
    )
    .unwrap();

    compose_ok(&d, dir.path(), &project, &["up", "-d"]);

    // Both run, the port is shown, and it answers from the host.
    let ps = compose_ok(&d, dir.path(), &project, &["ps"]);
    let web = format!("{project}_web_1");
    let client = format!("{project}_client_1");
    for name in [&web, &client] {
        let line = ps.lines().find(|l| l.starts_with(name.as_str()));
        assert!(
            line.is_some_and(|l| l.contains(" Up")),
            "{name} not up in:\n{ps}"
        );
        assert_eq!(
            ps.lines().filter(|l| l.starts_with(name.as_str())).count(),
            1,
            "{name} listed more than once:\n{ps}"
        );
    }
    assert!(
        ps.contains(&format!("0.0.0.0:{port}->8080/tcp")),
        "no port in:\n{ps}"
    );
    let body = http_get(port).expect("the published port did not answer");
    assert!(body.contains("hello from web"), "{body}");

    // The client found `web` by its service name (the embedded DNS).
    let deadline = Instant::now() + Duration::from_secs(30);
    let logs = loop {
        let logs = compose_ok(&d, dir.path(), &project, &["logs", "--no-color"]);
        if logs.contains("client got: hello from web") || Instant::now() > deadline {
            break logs;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(logs.contains("client got: hello from web"), "{logs}");
    assert!(logs.contains("web up"), "{logs}");

    // `down`: containers and network gone, the named volume kept.
    compose_ok(&d, dir.path(), &project, &["down"]);
    let (all, _) = text(&d.docker(&["ps", "-a", "--format", "{{.Names}}"]));
    assert!(!all.contains(&project), "containers left: {all}");
    let networks = d.ok(&["network", "ls", "--format", "{{.Name}}"]);
    assert!(
        !networks.contains(&format!("{project}_default")),
        "{networks}"
    );
    let volume = format!("{project}_data");
    let volumes = d.ok(&["volume", "ls", "--format", "{{.Name}}"]);
    assert!(volumes.lines().any(|v| v == volume), "{volumes}");
    let labels = d.ok(&[
        "volume",
        "inspect",
        "-f",
        "{{index .Labels \"com.docker.compose.project\"}}",
        &volume,
    ]);
    assert_eq!(labels.trim(), project);

    // What is in the volume is there for the next `up`, and `down -v` removes it too.
    d.ok(&[
        "run",
        "--rm",
        "-v",
        &format!("{volume}:/d"),
        "bb:local",
        "sh",
        "-c",
        "echo kept in the volume > /d/index.html",
    ]);
    compose_ok(&d, dir.path(), &project, &["up", "-d", "web"]);
    let body = http_get(port).expect("the published port did not answer after a new up");
    assert!(body.contains("kept in the volume"), "{body}");
    compose_ok(&d, dir.path(), &project, &["down", "-v"]);
    let volumes = d.ok(&["volume", "ls", "--format", "{{.Name}}"]);
    assert!(!volumes.lines().any(|v| v == volume), "{volumes}");
}

/// `depends_on` with `condition: service_healthy`: compose starts the app once berthd reports
/// the database healthy (before health checks ran, compose refused: "has no healthcheck").
#[test]
fn a_service_waits_for_its_dependency_to_be_healthy() {
    if skip() {
        return;
    }
    let d = Daemon::start();
    d.busybox("bb:local");
    let dir = tempfile::tempdir().unwrap();
    let project = format!("h{}", std::process::id());
    // A subnet of its own: the other test's daemon, started at the same time, would choose the
    // same default pool for its project network (each daemon skips the routes it sees, and
    // neither has made its bridge yet), and the host would route one's packets to the other.
    let subnet = format!(
        "10.{}.{}.0/24",
        230 + std::process::id() % 20,
        std::process::id() % 250
    );
    std::fs::write(
        dir.path().join("docker-compose.yml"),
        format!(
            r#"version: "2.4"
networks:
  default:
    ipam:
      config:
        - subnet: {subnet}
services:
  db:
    image: bb:local
    command: ["sh", "-c", "sleep 1; >/tmp/ready; exec sleep 300"]
    healthcheck:
      test: ["CMD-SHELL", "test -e /tmp/ready"]
      interval: 200ms
      retries: 30
  app:
    image: bb:local
    command: ["sleep", "300"]
    depends_on:
      db:
        condition: service_healthy
"#
        ),
    )
    .unwrap();
    compose_ok(&d, dir.path(), &project, &["up", "-d"]);
    let db = format!("{project}_db_1");
    let app = format!("{project}_app_1");
    let health = d.ok(&["inspect", "--format", "{{json .State.Health}}", &db]);
    let health: serde_json::Value = serde_json::from_str(health.trim()).unwrap();
    assert_eq!(health["Status"], "healthy", "{health}");
    // The app started after the first successful probe.
    let healthy_at = health["Log"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["ExitCode"] == 0)
        .and_then(|r| r["End"].as_str())
        .unwrap()
        .to_string();
    let app_started = d.ok(&["inspect", "--format", "{{.State.StartedAt}}", &app]);
    assert!(
        app_started.trim() > healthy_at.as_str(),
        "app started at {app_started} before db was healthy at {healthy_at}"
    );
    compose_ok(&d, dir.path(), &project, &["down"]);
}
