#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions unwrap too

//! `POST /build` through the clients the tests did not write: the Docker Python SDK
//! (`client.images.build` with its options, a file object, a custom context), docker-compose
//! 1.29 (`build:` with `args`, `target`, `dockerfile`; `up --build`) and bollard's
//! `build_image`.

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use bollard::query_parameters::BuildImageOptionsBuilder;
use bollard::Docker;
use common::{python_sdk, skip, Daemon};
use futures_util::StreamExt;

/// A two-stage project: `final` copies what `build` made, with a build arg.
fn project(dir: &Path) {
    std::fs::write(
        dir.join("Dockerfile.alt"),
        "FROM busybox AS build\nARG V=default\nRUN echo \"v=$V\" > /made\n\
         FROM busybox AS final\nCOPY --from=build /made /made\nCOPY note.txt /note.txt\n\
         CMD [\"cat\", \"/made\", \"/note.txt\"]\nFROM busybox AS unused\nRUN false\n",
    )
    .unwrap();
    std::fs::write(dir.join("note.txt"), "note\n").unwrap();
}

#[test]
fn the_python_sdk_builds_with_its_options_a_file_object_and_a_custom_context() {
    if skip() {
        return;
    }
    let d = Daemon::start();
    d.busybox("busybox");
    let ctx = tempfile::tempdir().unwrap();
    project(ctx.path());
    let script = format!(
        r#"
import io, tarfile, docker
c = docker.from_env()
image, logs = c.images.build(path={path:?}, tag="py:1", buildargs={{"V": "from-sdk"}},
    target="final", nocache=True, rm=True, pull=False, dockerfile="Dockerfile.alt")
print("tags", image.tags)
print("steps", sum(1 for l in logs if "stream" in l and l["stream"].startswith("Step ")))
print(c.containers.run("py:1", remove=True).decode(), end="")
# A Dockerfile as a file object.
image, _ = c.images.build(fileobj=io.BytesIO(b"FROM busybox\nLABEL from=fileobj\n"), tag="py:2")
print("label", image.labels.get("from"))
# A custom context: a gzipped tar made here.
buf = io.BytesIO()
with tarfile.open(fileobj=buf, mode="w:gz") as t:
    df = b"FROM busybox\nCOPY hello /hello\n"
    for name, data in (("Dockerfile", df), ("hello", b"custom\n")):
        info = tarfile.TarInfo(name); info.size = len(data)
        t.addfile(info, io.BytesIO(data))
buf.seek(0)
image, _ = c.images.build(fileobj=buf, custom_context=True, encoding="gzip", tag="py:3")
print(c.containers.run("py:3", ["cat", "/hello"], remove=True).decode(), end="")
# A failing build raises BuildError with the classic builder's message.
try:
    c.images.build(fileobj=io.BytesIO(b"FROM busybox\nRUN exit 4\n"))
except docker.errors.BuildError as e:
    print("error", e.msg)
"#,
        path = ctx.path().display().to_string()
    );
    let out = python_sdk(&d, &script);
    if out.is_empty() {
        return;
    }
    assert_eq!(
        out,
        "tags ['py:1']\nsteps 7\nv=from-sdk\nnote\nlabel fileobj\ncustom\n\
         error The command '/bin/sh -c exit 4' returned a non-zero code: 4\n",
    );
}

#[test]
fn docker_compose_builds_its_services_and_up_build_runs_them() {
    if skip() {
        return;
    }
    let compose = "/usr/bin/docker-compose";
    assert!(
        Path::new(compose).exists() || std::env::var("CI").is_err(),
        "docker-compose is not installed (apt-get install docker-compose)"
    );
    if !Path::new(compose).exists() {
        eprintln!("skipped: no docker-compose");
        return;
    }
    let d = Daemon::start();
    d.busybox("busybox");
    let ctx = tempfile::tempdir().unwrap();
    project(ctx.path());
    std::fs::write(
        ctx.path().join("docker-compose.yml"),
        "version: '3.7'\nservices:\n  app:\n    build:\n      context: .\n      dockerfile: Dockerfile.alt\n      target: final\n      args:\n        V: from-compose\n    image: composed:1\n",
    )
    .unwrap();
    let project_name = format!("b{}", std::process::id());
    let run = |args: &[&str]| {
        let mut cmd = std::process::Command::new(compose);
        cmd.args(["--no-ansi", "-p", &project_name])
            .args(args)
            .current_dir(ctx.path())
            .env("DOCKER_HOST", format!("unix://{}", d.socket.display()));
        let out = berth_tests::run_with_timeout(&mut cmd, Duration::from_secs(120));
        assert!(
            out.status.success(),
            "compose {args:?}: {out:?}\n{}",
            d.log()
        );
        out.stdout + &out.stderr
    };
    let out = run(&["build"]);
    assert!(out.contains("Successfully tagged composed:1"), "{out}");
    assert_eq!(
        d.ok(&["run", "--rm", "composed:1"]),
        "v=from-compose\nnote\n"
    );
    std::fs::write(ctx.path().join("note.txt"), "changed\n").unwrap();
    run(&["up", "--build", "--no-color", "--abort-on-container-exit"]);
    let logs = d.ok(&["logs", &format!("{project_name}_app_1")]);
    assert_eq!(logs, "v=from-compose\nchanged\n");
    run(&["down"]);
}

#[tokio::test]
async fn bollard_builds_from_a_tar_body() {
    if skip() {
        return;
    }
    let d = Daemon::start();
    d.busybox("busybox");
    let mut tar = tar::Builder::new(Vec::new());
    for (name, data) in [
        (
            "Dockerfile",
            &b"FROM busybox\nARG WHO\nRUN echo \"hi $WHO\" > /hi\n"[..],
        ),
        ("unused.txt", b"x"),
    ] {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        tar.append_data(&mut h, name, data).unwrap();
    }
    let body = tar.into_inner().unwrap();
    let docker =
        Docker::connect_with_unix(d.socket.to_str().unwrap(), 60, bollard::API_DEFAULT_VERSION)
            .unwrap();
    let args: HashMap<&str, &str> = [("WHO", "bollard")].into();
    let options = BuildImageOptionsBuilder::new()
        .dockerfile("Dockerfile")
        .t("bollard:1")
        .buildargs(&args)
        .rm(true)
        .build();
    let mut stream = docker.build_image(options, None, Some(bollard::body_full(body.into())));
    let mut id = None;
    let mut text = String::new();
    while let Some(item) = stream.next().await {
        let info = item.unwrap();
        if let Some(aux) = info.aux {
            id = aux.id;
        }
        text.push_str(info.stream.as_deref().unwrap_or(""));
    }
    assert!(text.contains("Successfully tagged bollard:1"), "{text}");
    let id = id.expect("an aux ID");
    assert_eq!(
        d.ok(&["image", "inspect", "-f", "{{.Id}}", "bollard:1"])
            .trim(),
        id
    );
    assert_eq!(
        d.ok(&["run", "--rm", "bollard:1", "cat", "/hi"]),
        "hi bollard\n"
    );
}
