//! `docker build` (the docker CLI 28 with the classic builder) against berthd: steps, the
//! image they make, the cache, and a failing step.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions unwrap too

mod common;

use std::time::Duration;

use common::{skip, Daemon};

/// `docker build ARGS` with the classic builder (the CLI has no buildx here); stdout, stderr
/// and whether it succeeded.
fn build(d: &Daemon, args: &[&str]) -> (bool, String, String) {
    let mut cmd = d.docker_command(&[&["build"], args].concat());
    cmd.env("DOCKER_BUILDKIT", "0");
    let out = berth_tests::run_with_timeout(&mut cmd, Duration::from_secs(120));
    let mut stderr = out.stderr;
    if stderr.contains("unexpected EOF") {
        stderr.push_str(&d.log());
    }
    (out.status.success(), out.stdout, stderr)
}

#[test]
fn docker_build_runs_steps_caches_them_and_reports_a_failed_one() {
    if skip() {
        return;
    }
    let d = Daemon::start();
    d.busybox("busybox");
    let ctx = tempfile::tempdir().unwrap();
    std::fs::write(
        ctx.path().join("Dockerfile"),
        "FROM busybox\nARG WHO=world\nENV GREETING=hello\nWORKDIR /app\nRUN echo \"$GREETING $WHO\" > out && echo built-it\nCMD [\"cat\", \"/app/out\"]\n",
    )
    .unwrap();
    let dir = ctx.path().to_str().unwrap();
    let (ok, stdout, stderr) = build(&d, &["-t", "built:1", "--build-arg", "WHO=berth", dir]);
    assert!(ok, "{stdout}{stderr}");
    for expected in [
        "Step 1/6 : FROM busybox",
        "Step 5/6 : RUN echo \"$GREETING $WHO\" > out && echo built-it",
        " ---> Running in ",
        "built-it",
        "Removing intermediate container",
        "Successfully built ",
        "Successfully tagged built:1",
    ] {
        assert!(
            stdout.contains(expected),
            "{expected:?} missing in {stdout}"
        );
    }
    assert!(!stdout.contains("Using cache"), "{stdout}");
    assert_eq!(d.ok(&["run", "--rm", "built:1"]), "hello berth\n");
    let inspect = d.ok(&[
        "image",
        "inspect",
        "-f",
        "{{.Config.WorkingDir}} {{.Config.Env}} {{.Config.Cmd}} {{len .RootFS.Layers}}",
        "built:1",
    ]);
    // busybox's layer, WORKDIR's (a new directory) and RUN's.
    assert_eq!(inspect.trim(), "/app [GREETING=hello] [cat /app/out] 3");
    let history = d.ok(&[
        "history",
        "--no-trunc",
        "--format",
        "{{.CreatedBy}}",
        "built:1",
    ]);
    assert!(
        history.contains("|1 WHO=berth /bin/sh -c echo \"$GREETING $WHO\" > out && echo built-it"),
        "{history}"
    );
    // No container is left of the steps.
    assert_eq!(d.ok(&["ps", "-aq"]), "");

    // Again: every step from the cache, the same image.
    let id = d.ok(&["image", "inspect", "-f", "{{.Id}}", "built:1"]);
    let (ok, stdout, stderr) = build(&d, &["-t", "built:2", "--build-arg", "WHO=berth", dir]);
    assert!(ok, "{stdout}{stderr}");
    assert_eq!(stdout.matches(" ---> Using cache").count(), 5, "{stdout}");
    assert!(!stdout.contains("Running in"), "{stdout}");
    assert_eq!(d.ok(&["image", "inspect", "-f", "{{.Id}}", "built:2"]), id);
    // Another build arg misses from the RUN on (the ARG step itself is the same text).
    let (ok, stdout, _) = build(&d, &["-q", "--build-arg", "WHO=you", dir]);
    assert!(ok);
    let new_id = stdout.trim();
    assert!(new_id.starts_with("sha256:"), "{stdout}");
    assert_eq!(d.ok(&["run", "--rm", new_id]), "hello you\n");

    // A failing step: the classic builder's message, its exit code, nothing left behind.
    std::fs::write(
        ctx.path().join("Dockerfile"),
        "FROM busybox\nRUN echo partial > /p && exit 3\n",
    )
    .unwrap();
    let (ok, stdout, stderr) = build(&d, &["-t", "broken", dir]);
    assert!(!ok, "{stdout}");
    assert!(
        stderr.contains(
            "The command '/bin/sh -c echo partial > /p && exit 3' returned a non-zero code: 3"
        ),
        "{stderr}"
    );
    assert_eq!(d.ok(&["ps", "-aq"]), "");
    assert!(d.docker(&["image", "inspect", "broken"]).status.code() != Some(0));
    // A Dockerfile error names its line.
    std::fs::write(ctx.path().join("Dockerfile"), "FROM busybox\nRUNN true\n").unwrap();
    let (ok, _, stderr) = build(&d, &[dir]);
    assert!(!ok);
    assert!(
        stderr.contains("dockerfile parse error on line 2: unknown instruction: RUNN"),
        "{stderr}"
    );
    // No mount of a step is left.
    assert_eq!(d.mounts_under(), Vec::<String>::new());
}

#[test]
fn copy_from_the_context_and_from_a_stage_with_the_cache_following_the_files() {
    if skip() {
        return;
    }
    let d = Daemon::start();
    d.busybox("busybox");
    let ctx = tempfile::tempdir().unwrap();
    let p = ctx.path();
    std::fs::create_dir_all(p.join("src/sub")).unwrap();
    std::fs::write(p.join("src/a.txt"), "A\n").unwrap();
    std::fs::write(p.join("src/sub/b.txt"), "B\n").unwrap();
    std::fs::write(p.join("src/secret.key"), "no\n").unwrap();
    std::fs::write(p.join(".dockerignore"), "**/*.key\n").unwrap();
    std::fs::write(
        p.join("Dockerfile"),
        "FROM busybox AS gen\nRUN mkdir /out && echo generated > /out/g.txt\n\
         FROM busybox\nCOPY src/ /app/\nCOPY --from=gen --chown=7:8 /out/g.txt /app/\n\
         RUN cat /app/a.txt /app/sub/b.txt /app/g.txt > /all && ls /app > /list\n",
    )
    .unwrap();
    let dir = p.to_str().unwrap();
    let (ok, stdout, stderr) = build(&d, &["-t", "copied", dir]);
    assert!(ok, "{stdout}{stderr}");
    assert_eq!(
        d.ok(&["run", "--rm", "copied", "cat", "/all", "/list"]),
        "A\nB\ngenerated\na.txt\ng.txt\nsub\n"
    );
    assert_eq!(
        d.ok(&[
            "run",
            "--rm",
            "copied",
            "stat",
            "-c",
            "%u:%g %a",
            "/app/g.txt",
            "/app/a.txt"
        ]),
        "7:8 644\n0:0 644\n"
    );
    // Unchanged files: all from the cache. A touched file (same content): still.
    let (ok, stdout, _) = build(&d, &["-t", "copied", dir]);
    assert!(ok);
    assert_eq!(stdout.matches(" ---> Using cache").count(), 4, "{stdout}");
    std::fs::File::options()
        .write(true)
        .open(p.join("src/a.txt"))
        .unwrap()
        .set_modified(std::time::UNIX_EPOCH + Duration::from_secs(1))
        .unwrap();
    let (_, stdout, _) = build(&d, &["-t", "copied", dir]);
    assert_eq!(stdout.matches(" ---> Using cache").count(), 4, "{stdout}");
    // A changed file: its COPY and what follows run again; the ignored file never counts.
    std::fs::write(p.join("src/secret.key"), "changed\n").unwrap();
    let (_, stdout, _) = build(&d, &["-t", "copied", dir]);
    assert_eq!(stdout.matches(" ---> Using cache").count(), 4, "{stdout}");
    std::fs::write(p.join("src/a.txt"), "A2\n").unwrap();
    let (ok, stdout, _) = build(&d, &["-t", "copied", dir]);
    assert!(ok);
    assert_eq!(stdout.matches(" ---> Using cache").count(), 1, "{stdout}");
    assert_eq!(
        d.ok(&["run", "--rm", "copied", "cat", "/all"]),
        "A2\nB\ngenerated\n"
    );
    // A missing source: the classic builder's message.
    std::fs::write(p.join("Dockerfile"), "FROM busybox\nCOPY nope.txt /x\n").unwrap();
    let (ok, _, stderr) = build(&d, &[dir]);
    assert!(!ok);
    assert!(
        stderr.contains("COPY failed: file not found in build context or excluded by .dockerignore: stat nope.txt: file does not exist"),
        "{stderr}"
    );
    assert_eq!(d.mounts_under(), Vec::<String>::new());
}
