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

/// A build context directory holding `files` (name, content).
fn context(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (name, content) in files {
        std::fs::write(dir.path().join(name), content).unwrap();
    }
    dir
}

#[test]
fn docker_build_runs_steps_caches_them_and_reports_a_failed_one() {
    if skip() {
        return;
    }
    let d = Daemon::start();
    d.busybox("busybox");
    let ctx = context(&[("Dockerfile", "FROM busybox\nARG WHO=world\nENV GREETING=hello\nWORKDIR /app\nRUN echo \"$GREETING $WHO\" > out && echo built-it\nCMD [\"cat\", \"/app/out\"]\n")]);
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

/// `docker system df`'s Build Cache row: count, size, reclaimable.
fn build_cache_row(d: &Daemon) -> String {
    let out = d.ok(&[
        "system",
        "df",
        "--format",
        "{{.Type}}|{{.TotalCount}}|{{.Size}}|{{.Reclaimable}}",
    ]);
    out.lines()
        .find(|l| l.starts_with("Build Cache|"))
        .unwrap_or_default()
        .to_string()
}

#[test]
fn build_cache_shows_in_system_df_and_builder_prune_reclaims_it() {
    if skip() {
        return;
    }
    let d = Daemon::start();
    d.busybox("busybox");
    let ctx = context(&[(
        "Dockerfile",
        "FROM busybox\nENV A=1\nRUN head -c 5000000 /dev/urandom > /blob\n",
    )]);
    let dir = ctx.path().to_str().unwrap();
    let (ok, stdout, stderr) = build(&d, &["-t", "cached:1", dir]);
    assert!(ok, "{stdout}{stderr}");
    // Two records (ENV, RUN); the RUN's 5 MB layer is the image's too: shared, so neither
    // counted nor reclaimable (the docker CLI sums the entries that are not shared).
    let row = build_cache_row(&d);
    assert_eq!(row, "Build Cache|2|0B|0B");
    d.ok(&["rmi", "cached:1"]);
    // The layer's tar: the 5,000,000 bytes, a header and the end blocks.
    assert_eq!(build_cache_row(&d), "Build Cache|2|5.002MB|5.002MB");
    let blobs = d.dir.join("data/image/content/blobs/sha256");
    let count = || std::fs::read_dir(&blobs).unwrap().count();
    let before = count();
    let out = d.ok(&["builder", "prune", "-f"]);
    assert!(out.contains("Total reclaimed space: 5.002MB"), "{out}");
    assert_eq!(build_cache_row(&d), "Build Cache|0|0B|0B");
    // The layer and the steps' configs and manifests are gone from the store.
    assert!(count() <= before - 5, "{before} -> {}", count());
    let (ok, stdout, _) = build(&d, &[dir]);
    assert!(ok);
    assert!(!stdout.contains("Using cache"), "{stdout}");
    // A bad filter is refused.
    let out = d.docker(&["builder", "prune", "-f", "--filter", "nope=1"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid filter 'nope'"));
}

#[test]
fn builder_gc_keeps_the_build_cache_under_its_size() {
    if skip() {
        return;
    }
    // daemon.json: `builder.gc` keeps 3 MB of build cache.
    let d = Daemon::start_with(|dir| {
        std::fs::write(
            dir.join("daemon.json"),
            r#"{"builder": {"gc": {"enabled": true, "defaultKeepStorage": "3MB"}}}"#,
        )
        .unwrap();
    });
    d.busybox("busybox");
    let ctx = tempfile::tempdir().unwrap();
    let dir = ctx.path().to_str().unwrap();
    for n in 1..=2 {
        std::fs::write(
            ctx.path().join("Dockerfile"),
            format!("FROM busybox\nRUN head -c 2000000 /dev/urandom > /blob{n}\n"),
        )
        .unwrap();
        let (ok, stdout, stderr) = build(&d, &[dir]);
        assert!(ok, "{stdout}{stderr}");
        // The result is dangling: once pruned, its layer is the cache's alone.
        d.ok(&["image", "prune", "-f"]);
    }
    // After the second build, 4 MB of cache: the older entry went to stay under 3 MB.
    let row = build_cache_row(&d);
    assert_eq!(row, "Build Cache|1|2.002MB|2.002MB");
}

#[test]
fn run_steps_get_the_builds_hosts_shm_and_memory() {
    if skip() {
        return;
    }
    let d = Daemon::start();
    d.busybox("busybox");
    let ctx = context(&[(
        "Dockerfile",
        "FROM busybox\nRUN grep myhost /etc/hosts > /hosts && df -k /dev/shm | tail -1 > /shm\n",
    )]);
    let dir = ctx.path().to_str().unwrap();
    let (ok, stdout, stderr) = build(
        &d,
        &[
            "-t",
            "res",
            "--add-host",
            "myhost:10.1.2.3",
            "--shm-size",
            "32m",
            "--memory",
            "64m",
            dir,
        ],
    );
    assert!(ok, "{stdout}{stderr}");
    let hosts = d.ok(&["run", "--rm", "res", "cat", "/hosts"]);
    assert!(hosts.starts_with("10.1.2.3\tmyhost"), "{hosts}");
    let shm = d.ok(&["run", "--rm", "res", "cat", "/shm"]);
    assert!(shm.split_whitespace().nth(1) == Some("32768"), "{shm}");
}

#[test]
fn a_client_that_goes_away_cancels_the_build_and_its_running_step() {
    if skip() {
        return;
    }
    let d = Daemon::start();
    d.busybox("busybox");
    let ctx = context(&[(
        "Dockerfile",
        "FROM busybox\nRUN echo started && sleep 300\nRUN touch /never\n",
    )]);
    let mut cmd = d.docker_command(&["build", ctx.path().to_str().unwrap()]);
    cmd.env("DOCKER_BUILDKIT", "0");
    let mut client = cmd.spawn().unwrap();
    // Until the step runs (its container is there), 60 s at most.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while d.ok(&["ps", "-q"]).trim().is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "the step never started"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    client.kill().unwrap();
    let _ = client.wait();
    // berthd kills the step and removes its container; nothing else runs.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !d.ok(&["ps", "-aq"]).trim().is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "the step's container is still there: {}",
            d.ok(&["ps", "-a"])
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !d.mounts_under().is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "{:?}",
            d.mounts_under()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(d.ok(&["images", "-q"]).lines().count(), 1, "busybox only");
}

#[test]
fn base_images_are_pulled_with_the_clients_registry_credentials() {
    if skip() {
        return;
    }
    let registry = berth_tests::registry::Registry::start_with_htpasswd("alice", "s3cret").unwrap();
    let host = registry.host();
    let d = Daemon::start();
    d.busybox("busybox");
    let base = format!("{host}/team/base:1");
    d.ok(&["tag", "busybox", &base]);
    let out = d.docker_stdin(
        &["login", "-u", "alice", "--password-stdin", &host],
        Some(b"s3cret\n"),
    );
    assert!(out.status.success(), "{out:?}");
    d.ok(&["push", &base]);
    d.ok(&["rmi", &base]);
    let ctx = context(&[(
        "Dockerfile",
        &format!("FROM {base}\nRUN echo pulled > /p\n"),
    )]);
    // The docker CLI sends its saved credentials as X-Registry-Config.
    let (ok, stdout, stderr) = build(&d, &["-t", "from-private", ctx.path().to_str().unwrap()]);
    assert!(ok, "{stdout}{stderr}");
    assert_eq!(
        d.ok(&["run", "--rm", "from-private", "cat", "/p"]),
        "pulled\n"
    );
    // Without them, the pull is refused.
    d.ok(&["logout", &host]);
    d.ok(&["rmi", &base, "from-private"]);
    let (ok, _, stderr) = build(&d, &[ctx.path().to_str().unwrap()]);
    assert!(!ok);
    assert!(stderr.contains("pull access denied"), "{stderr}");
}

#[test]
fn a_dockerfile_outside_the_context_as_the_docker_cli_sends_it() {
    if skip() {
        return;
    }
    let d = Daemon::start();
    d.busybox("busybox");
    let ctx = context(&[("a.txt", "inside\n")]);
    let outside = tempfile::tempdir().unwrap();
    let dockerfile = outside.path().join("Build.df");
    std::fs::write(&dockerfile, "FROM busybox\nCOPY . /ctx/\n").unwrap();
    // The CLI adds the Dockerfile (and a .dockerignore naming it) to the context's tar, and
    // ends the stream right after the last entry's data.
    let (ok, stdout, stderr) = build(
        &d,
        &[
            "-t",
            "outside",
            "-f",
            dockerfile.to_str().unwrap(),
            ctx.path().to_str().unwrap(),
        ],
    );
    assert!(ok, "{stdout}{stderr}");
    assert_eq!(
        d.ok(&["run", "--rm", "outside", "ls", "-A", "/ctx"]),
        "a.txt\n"
    );
}

/// An HTTP server on loopback serving `files` (path, body), with a `Last-Modified` of 1994;
/// 404 for the rest. Serves until the test process ends.
fn serve(files: Vec<(String, Vec<u8>)>) -> u16 {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let mut reader = BufReader::new(conn.try_clone().unwrap());
            let mut line = String::new();
            let _ = reader.read_line(&mut line);
            loop {
                let mut h = String::new();
                if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                    break;
                }
            }
            let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
            let mut conn = conn;
            match files.iter().find(|(p, _)| *p == path) {
                Some((_, body)) => {
                    let head = format!(
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nLast-Modified: Sun, 06 Nov 1994 08:49:37 GMT\r\nConnection: close\r\n\r\n",
                        body.len()
                    );
                    let _ = conn.write_all(head.as_bytes());
                    let _ = conn.write_all(body);
                }
                None => {
                    let _ = conn.write_all(
                        b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                    );
                }
            }
        }
    });
    port
}

fn serve_hello() -> u16 {
    serve(vec![("/files/hello.txt".into(), b"hello\n".to_vec())])
}

#[test]
fn add_fetches_urls_checks_their_checksum_and_caches_by_content() {
    if skip() {
        return;
    }
    let d = Daemon::start();
    d.busybox("busybox");
    let port = serve_hello();
    let url = format!("http://127.0.0.1:{port}/files/hello.txt");
    // sha256 of "hello\n".
    let sum = "sha256:5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03";
    let ctx = context(&[(
        "Dockerfile",
        &format!("FROM busybox\nADD --checksum={sum} {url} /srv/\n"),
    )]);
    let dir = ctx.path().to_str().unwrap();
    let (ok, stdout, stderr) = build(&d, &["-t", "fetched", dir]);
    assert!(ok, "{stdout}{stderr}");
    // dockerd's download: mode 0600, the server's time.
    assert_eq!(
        d.ok(&[
            "run",
            "--rm",
            "fetched",
            "stat",
            "-c",
            "%a %Y %s",
            "/srv/hello.txt"
        ]),
        "600 784111777 6\n"
    );
    // Fetched again, same content: the cache holds.
    let (ok, stdout, _) = build(&d, &[dir]);
    assert!(ok);
    assert!(stdout.contains(" ---> Using cache"), "{stdout}");
    // A wrong checksum, a 404, a URL in COPY: errors.
    let wrong = format!("sha256:{}", "0".repeat(64));
    for (dockerfile, message) in [
        (
            format!("FROM busybox\nADD --checksum={wrong} {url} /srv/\n"),
            "checksum mismatch".to_string(),
        ),
        (
            format!("FROM busybox\nADD http://127.0.0.1:{port}/nope /srv/\n"),
            "with status 404 Not Found".to_string(),
        ),
        (
            format!("FROM busybox\nCOPY {url} /srv/\n"),
            "source can't be a URL for COPY".to_string(),
        ),
    ] {
        std::fs::write(ctx.path().join("Dockerfile"), dockerfile).unwrap();
        let (ok, _, stderr) = build(&d, &[dir]);
        assert!(!ok);
        assert!(stderr.contains(&message), "{message:?} in {stderr}");
    }
    assert_eq!(d.mounts_under(), Vec::<String>::new());
}

#[test]
fn a_remote_tarball_or_dockerfile_is_the_context() {
    if skip() {
        return;
    }
    let d = Daemon::start();
    d.busybox("busybox");
    let mut tar = tar::Builder::new(Vec::new());
    for (name, data) in [
        ("Dockerfile", &b"FROM busybox\nCOPY msg /msg\n"[..]),
        ("msg", b"from a remote tarball\n"),
    ] {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        tar.append_data(&mut h, name, data).unwrap();
    }
    let port = serve(vec![
        ("/ctx.tar".into(), tar.into_inner().unwrap()),
        (
            "/Dockerfile".into(),
            b"FROM busybox\nRUN echo remote > /r\n".to_vec(),
        ),
    ]);
    let post = |query: &str| {
        let mut cmd = std::process::Command::new("curl");
        cmd.args([
            "-sS",
            "--unix-socket",
            d.socket.to_str().unwrap(),
            "-X",
            "POST",
        ])
        .arg(format!("http://d/build?{query}"));
        let out = berth_tests::run_with_timeout(&mut cmd, Duration::from_secs(120));
        assert!(out.status.success(), "{out:?}");
        out.stdout
    };
    let out = post(&format!(
        "t=remote:1&remote=http://127.0.0.1:{port}/ctx.tar"
    ));
    assert!(out.contains("Successfully tagged remote:1"), "{out}");
    assert_eq!(
        d.ok(&["run", "--rm", "remote:1", "cat", "/msg"]),
        "from a remote tarball\n"
    );
    let out = post(&format!(
        "t=remote:2&remote=http://127.0.0.1:{port}/Dockerfile"
    ));
    assert!(out.contains("Successfully tagged remote:2"), "{out}");
    assert_eq!(d.ok(&["run", "--rm", "remote:2", "cat", "/r"]), "remote\n");
    let out = post(&format!("remote=http://127.0.0.1:{port}/nope"));
    assert!(out.contains("with status 404 Not Found"), "{out}");
    let out = post("remote=git://example.invalid/repo.git");
    assert!(out.contains("git repositories"), "{out}");
}

#[test]
fn cache_from_an_image_gives_its_steps_after_the_cache_is_gone() {
    if skip() {
        return;
    }
    let d = Daemon::start();
    d.busybox("busybox");
    let ctx = context(&[
        ("f.txt", "file\n"),
        (
            "Dockerfile",
            "FROM busybox\nENV A=1\nRUN echo ran > /ran\nCOPY f.txt /f.txt\nCMD [\"cat\", \"/ran\"]\n",
        ),
    ]);
    let dir = ctx.path().to_str().unwrap();
    let (ok, stdout, stderr) = build(&d, &["-t", "seed:1", dir]);
    assert!(ok, "{stdout}{stderr}");
    // No build cache left: only the image's history can give the steps.
    d.ok(&["builder", "prune", "-af"]);
    let (ok, stdout, _) = build(&d, &[dir]);
    assert!(ok);
    assert!(!stdout.contains("Using cache"), "{stdout}");
    d.ok(&["builder", "prune", "-af"]);
    let (ok, stdout, stderr) = build(&d, &["-t", "again:1", "--cache-from", "seed:1", dir]);
    assert!(ok, "{stdout}{stderr}");
    assert_eq!(stdout.matches(" ---> Using cache").count(), 4, "{stdout}");
    assert!(!stdout.contains("Running in"), "{stdout}");
    assert_eq!(d.ok(&["run", "--rm", "again:1"]), "ran\n");
    // The same layers as the seed's.
    let layers = |name: &str| d.ok(&["image", "inspect", "-f", "{{.RootFS.Layers}}", name]);
    assert_eq!(layers("again:1"), layers("seed:1"));
    // A changed step is built, and so is what follows.
    std::fs::write(ctx.path().join("f.txt"), "changed\n").unwrap();
    d.ok(&["builder", "prune", "-af"]);
    let (ok, stdout, _) = build(&d, &["--cache-from", "seed:1", dir]);
    assert!(ok);
    assert_eq!(stdout.matches(" ---> Using cache").count(), 2, "{stdout}");
}

#[test]
fn copy_link_makes_a_layer_of_its_own_that_a_new_base_reuses() {
    if skip() {
        return;
    }
    let d = Daemon::start();
    d.busybox("busybox");
    let base = context(&[("Dockerfile", "FROM busybox\nRUN echo other > /marker\n")]);
    let (ok, stdout, stderr) = build(&d, &["-t", "other-base", base.path().to_str().unwrap()]);
    assert!(ok, "{stdout}{stderr}");

    let ctx = context(&[
        ("data.txt", "linked data\n"),
        (
            "Dockerfile",
            "ARG BASE=busybox\nFROM $BASE\nCOPY --link --chown=1000:1001 data.txt /opt/app/\nRUN cat /opt/app/data.txt > /copied\n",
        ),
    ]);
    let dir = ctx.path().to_str().unwrap();
    let (ok, first, stderr) = build(&d, &["-t", "linked:1", dir]);
    assert!(ok, "{first}{stderr}");
    assert!(!first.contains("Using cache"), "{first}");
    // Another base: the COPY --link step's layer is reused, what follows runs again.
    let (ok, second, stderr) = build(
        &d,
        &["-t", "linked:2", "--build-arg", "BASE=other-base", dir],
    );
    assert!(ok, "{second}{stderr}");
    let copy_step = second
        .split("Step 2/3")
        .nth(1)
        .and_then(|s| s.split("Step 3/3").next())
        .unwrap_or_default();
    assert!(copy_step.contains("Using cache"), "{second}");
    assert!(second.contains("Running in"), "{second}");
    let layers = |tag: &str| -> Vec<String> {
        d.ok(&["image", "inspect", "-f", "{{json .RootFS.Layers}}", tag])
            .trim()
            .trim_matches(|c| c == '[' || c == ']')
            .split(',')
            .map(|s| s.trim_matches('"').to_string())
            .collect()
    };
    let (one, two) = (layers("linked:1"), layers("linked:2"));
    assert_eq!(one.len(), 3, "{one:?}");
    assert_eq!(two.len(), 4, "{two:?}");
    assert_eq!(one[1], two[2], "the same layer on both bases");
    assert_eq!(
        d.ok(&[
            "run",
            "--rm",
            "linked:2",
            "sh",
            "-c",
            "stat -c '%u:%g %a' /opt/app/data.txt; cat /copied /marker"
        ]),
        "1000:1001 644\nlinked data\nother\n"
    );
    // The layer holds the copied files and their parents, nothing of the base.
    let listing = d.ok(&["run", "--rm", "linked:1", "ls", "/opt/app"]);
    assert_eq!(listing, "data.txt\n");

    // A user name is looked up in the stage's /etc/passwd, though the layer is made alone.
    std::fs::write(
        ctx.path().join("Dockerfile"),
        "FROM busybox\nCOPY --link --chown=nobody:user data.txt /named.txt\n",
    )
    .unwrap();
    let (ok, out, stderr) = build(&d, &["-t", "linked:named", dir]);
    assert!(ok, "{out}{stderr}");
    assert_eq!(
        d.ok(&[
            "run",
            "--rm",
            "linked:named",
            "stat",
            "-c",
            "%u:%g",
            "/named.txt"
        ]),
        "65534:1000\n"
    );
}

#[test]
fn a_rw_bind_mount_takes_writes_and_forgets_them() {
    if skip() {
        return;
    }
    let d = Daemon::start();
    d.busybox("busybox");
    let ctx = context(&[("data.txt", "original\n")]);
    std::fs::write(
        ctx.path().join("Dockerfile"),
        "FROM busybox\n\
         RUN --mount=type=bind,target=/ctx,rw echo changed > /ctx/data.txt && cat /ctx/data.txt > /seen && touch /ctx/new\n\
         RUN --mount=type=bind,target=/ctx cat /ctx/data.txt > /after && ls /ctx > /listing\n\
         RUN --mount=type=bind,source=data.txt,target=/one.txt,rw echo more >> /one.txt && cat /one.txt > /one-seen\n",
    )
    .unwrap();
    let dir = ctx.path().to_str().unwrap();
    let (ok, out, stderr) = build(&d, &["-t", "rw:1", dir]);
    assert!(ok, "{out}{stderr}");
    assert_eq!(
        d.ok(&[
            "run",
            "--rm",
            "rw:1",
            "cat",
            "/seen",
            "/after",
            "/listing",
            "/one-seen"
        ]),
        "changed\noriginal\nDockerfile\ndata.txt\noriginal\nmore\n"
    );
    // The context on the client is untouched, and nothing stays mounted.
    assert_eq!(
        std::fs::read_to_string(ctx.path().join("data.txt")).unwrap(),
        "original\n"
    );
    assert_eq!(d.mounts_under(), Vec::<String>::new());
    // Without rw, a write fails the step.
    std::fs::write(
        ctx.path().join("Dockerfile"),
        "FROM busybox\nRUN --mount=type=bind,target=/ctx touch /ctx/x\n",
    )
    .unwrap();
    let (ok, out, _) = build(&d, &["-t", "rw:2", dir]);
    assert!(!ok, "{out}");
    assert_eq!(d.mounts_under(), Vec::<String>::new());
}

#[test]
fn add_of_urls_and_files_and_copy_of_heredocs_and_files_in_one_step() {
    if skip() {
        return;
    }
    let d = Daemon::start();
    d.busybox("busybox");
    let port = serve_hello();
    let url = format!("http://127.0.0.1:{port}/files/hello.txt");
    let dockerfile = format!(
        "FROM busybox\n\
         ADD {url} local.txt /mixed/\n\
         COPY <<EOF local.txt /both/\nfrom a heredoc\nEOF\n"
    );
    let ctx = context(&[("local.txt", "local\n"), ("Dockerfile", &dockerfile)]);
    let dir = ctx.path().to_str().unwrap();
    let (ok, first, stderr) = build(&d, &["-t", "mixed:1", dir]);
    assert!(ok, "{first}{stderr}");
    assert_eq!(
        d.ok(&[
            "run",
            "--rm",
            "mixed:1",
            "cat",
            "/mixed/hello.txt",
            "/mixed/local.txt",
            "/both/EOF",
            "/both/local.txt"
        ]),
        "hello\nlocal\nfrom a heredoc\nlocal\n"
    );
    let history = d.ok(&[
        "history",
        "--no-trunc",
        "--format",
        "{{.CreatedBy}}",
        "mixed:1",
    ]);
    assert!(history.contains("ADD multi:"), "{history}");
    // Unchanged: both steps from the cache; a local file changed: both run again.
    let (ok, again, _) = build(&d, &["-t", "mixed:2", dir]);
    assert!(ok && again.matches("Using cache").count() == 2, "{again}");
    std::fs::write(ctx.path().join("local.txt"), "changed\n").unwrap();
    let (ok, changed, _) = build(&d, &["-t", "mixed:3", dir]);
    assert!(ok && !changed.contains("Using cache"), "{changed}");
    assert_eq!(
        d.ok(&[
            "run",
            "--rm",
            "mixed:3",
            "cat",
            "/mixed/local.txt",
            "/both/local.txt"
        ]),
        "changed\nchanged\n"
    );
}
