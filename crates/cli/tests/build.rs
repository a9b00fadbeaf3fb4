#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions unwrap too

//! `berth build` end to end against a private berthd (see `common`): the context as the docker
//! CLI sends it, the flags, and the classic builder's output.

mod common;

use std::path::Path;

use berth_tests::{unique, Output};
use common::{Daemon, IMAGE};

/// The shared daemon; without one (not root) the test is skipped, but under `CI=true` it fails.
macro_rules! daemon_or_fail {
    () => {
        match common::daemon() {
            Some(d) => d,
            None => {
                assert!(
                    std::env::var("CI").is_err(),
                    "the build tests need root to start berthd (CI=true: no skipping)"
                );
                return;
            }
        }
    };
}

fn write(dir: &Path, name: &str, text: &str) {
    let p = dir.join(name);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

/// Removes the images on drop.
struct Images<'a> {
    d: &'a Daemon,
    names: Vec<String>,
}

impl Drop for Images<'_> {
    fn drop(&mut self) {
        for n in &self.names {
            let _ = self.d.berth(&["rmi", "-f", n]);
        }
    }
}

fn tag(d: &Daemon) -> (String, Images<'_>) {
    let t = format!("{}:1", unique("berth-build"));
    let guard = Images {
        d,
        names: vec![t.clone()],
    };
    (t, guard)
}

fn ok(out: Output) -> Output {
    assert_eq!(out.code(), 0, "{out:?}");
    out
}

#[test]
fn directory_context_honours_dockerignore_and_tags() {
    let d = daemon_or_fail!();
    let (t1, mut images) = tag(&d);
    let t2 = format!("{}:2", unique("berth-build"));
    images.names.push(t2.clone());
    let ctx = tempfile::tempdir().unwrap();
    write(ctx.path(), "keep.txt", "keep\n");
    write(ctx.path(), "secret.txt", "secret\n");
    write(ctx.path(), "sub/x", "x\n");
    write(
        ctx.path(),
        ".dockerignore",
        "secret.txt\nsub\nDockerfile\n.dockerignore\n",
    );
    write(
        ctx.path(),
        "Dockerfile",
        &format!("FROM {IMAGE}\nCOPY . /c/\nRUN ls -a /c\n"),
    );
    let dir = ctx.path().to_str().unwrap();
    let out = ok(d.berth(&["build", "--progress=plain", "-t", &t1, "--tag", &t2, dir]));
    let s = &out.stdout;
    assert!(
        s.starts_with("Sending build context to Docker daemon  "),
        "{s}"
    );
    assert!(
        s.contains("\r\r\nStep 1/3 : FROM berth-test-bb:latest\n"),
        "{s}"
    );
    assert!(s.contains("\nStep 2/3 : COPY . /c/\n"), "{s}");
    assert!(s.contains("\nStep 3/3 : RUN ls -a /c\n"), "{s}");
    assert!(s.contains("\nkeep.txt\n"), "{s}");
    // the ignored files are left out, but the Dockerfile and .dockerignore always go
    assert!(!s.contains("secret.txt"), "{s}");
    assert!(!s.contains("\nsub\n"), "{s}");
    assert!(s.contains("\nSuccessfully built "), "{s}");
    assert!(s.contains(&format!("\nSuccessfully tagged {t1}\n")), "{s}");
    assert!(s.contains(&format!("\nSuccessfully tagged {t2}\n")), "{s}");
    let out = ok(d.berth(&["image", "inspect", "--format", "{{.Id}}", &t2]));
    assert!(out.stdout.starts_with("sha256:"), "{out:?}");
}

#[test]
fn build_args_and_target() {
    let d = daemon_or_fail!();
    let ctx = tempfile::tempdir().unwrap();
    write(
        ctx.path(),
        "Dockerfile",
        &format!(
            "FROM {IMAGE} AS one\nARG A\nARG B\nRUN echo \"A=$A B=$B\"\n\
             FROM {IMAGE} AS two\nRUN echo second stage\n"
        ),
    );
    let out = d
        .command(&[
            "build",
            "--no-cache",
            "--build-arg",
            "A=1",
            "--build-arg",
            "B",
            "--build-arg",
            "BERTH_UNSET_BUILD_ARG",
            "--target",
            "one",
            ctx.path().to_str().unwrap(),
        ])
        .env("B", "from-env")
        .env_remove("BERTH_UNSET_BUILD_ARG")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("\nA=1 B=from-env\n"), "{stdout}");
    assert!(!stdout.contains("second stage"), "{stdout}");
    // an unset variable is not sent: no "not consumed" warning for it
    assert!(!stdout.contains("[Warning]"), "{stdout}");
}

#[test]
fn dockerfile_outside_the_context_and_from_stdin() {
    let d = daemon_or_fail!();
    let ctx = tempfile::tempdir().unwrap();
    let other = tempfile::tempdir().unwrap();
    write(ctx.path(), "keep.txt", "keep\n");
    let df = format!("FROM {IMAGE}\nCOPY . /c/\nRUN ls -a /c | tr '\\n' ' '; echo\n");
    write(other.path(), "Build.df", &df);
    let dir = ctx.path().to_str().unwrap();
    let file = other.path().join("Build.df");
    let out = ok(d.berth(&["build", "-f", file.to_str().unwrap(), dir]));
    // the Dockerfile went in under a name of its own, which COPY does not see
    assert!(out.stdout.contains("\n. .. keep.txt \n"), "{out:?}");
    let out = ok(d.berth_stdin(&["build", "--no-cache", "-f", "-", dir], df.as_bytes()));
    assert!(out.stdout.contains("\n. .. keep.txt \n"), "{out:?}");
    assert!(out.stdout.contains("\nStep 3/3 : RUN ls -a /c"), "{out:?}");
}

#[test]
fn stdin_tar_quiet_and_iidfile() {
    let d = daemon_or_fail!();
    let (t, _images) = tag(&d);
    let mut builder = tar::Builder::new(Vec::new());
    let df = format!("FROM {IMAGE}\nCOPY f /f\nRUN cat /f\n");
    for (name, text) in [("Dockerfile", df.as_str()), ("f", "from the tar\n")] {
        let mut h = tar::Header::new_gnu();
        h.set_size(text.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        builder.append_data(&mut h, name, text.as_bytes()).unwrap();
    }
    let archive = builder.into_inner().unwrap();
    let out = ok(d.berth_stdin(&["build", "-t", &t, "-"], &archive));
    assert!(out.stdout.contains("\nfrom the tar\n"), "{out:?}");
    assert!(!out.stdout.contains("Sending build context"), "{out:?}");
    let tmp = tempfile::tempdir().unwrap();
    let iid = tmp.path().join("iid");
    let out = ok(d.berth_stdin(
        &["build", "-q", "--iidfile", iid.to_str().unwrap(), "-"],
        &archive,
    ));
    let id = out.stdout.trim();
    assert!(id.starts_with("sha256:") && id.len() == 71, "{out:?}");
    assert_eq!(out.stdout, format!("{id}\n"));
    assert_eq!(std::fs::read_to_string(&iid).unwrap().trim(), id);
    let out = ok(d.berth(&["image", "inspect", "--format", "{{.Id}}", &t]));
    assert_eq!(out.stdout.trim(), id);
}

#[test]
fn cache_and_no_cache() {
    let d = daemon_or_fail!();
    let ctx = tempfile::tempdir().unwrap();
    let marker = unique("marker");
    write(
        ctx.path(),
        "Dockerfile",
        &format!("FROM {IMAGE}\nRUN echo {marker}\n"),
    );
    let dir = ctx.path().to_str().unwrap();
    let first = ok(d.berth(&["build", dir]));
    assert!(first.stdout.contains(&format!("\n{marker}\n")), "{first:?}");
    let again = ok(d.berth(&["build", dir]));
    assert!(again.stdout.contains(" ---> Using cache\n"), "{again:?}");
    let fresh = ok(d.berth(&["build", "--no-cache", dir]));
    assert!(!fresh.stdout.contains("Using cache"), "{fresh:?}");
    assert!(fresh.stdout.contains(&format!("\n{marker}\n")), "{fresh:?}");
}

#[test]
fn a_failing_run_ends_with_its_message_and_code() {
    let d = daemon_or_fail!();
    let ctx = tempfile::tempdir().unwrap();
    write(
        ctx.path(),
        "Dockerfile",
        &format!("FROM {IMAGE}\nRUN echo bad; false\n"),
    );
    let dir = ctx.path().to_str().unwrap();
    let out = d.berth(&["build", "--progress=plain", dir]);
    assert_eq!(out.code(), 1, "{out:?}");
    assert!(out.stdout.contains("\nbad\n"), "{out:?}");
    assert_eq!(
        out.stderr,
        "The command '/bin/sh -c echo bad; false' returned a non-zero code: 1\n"
    );
    // as docker: the exit status is the command's
    write(
        ctx.path(),
        "Dockerfile",
        &format!("FROM {IMAGE}\nRUN exit 3\n"),
    );
    let out = d.berth(&["build", "-q", dir]);
    assert_eq!(out.code(), 3, "{out:?}");
    assert!(
        out.stderr
            .ends_with("The command '/bin/sh -c exit 3' returned a non-zero code: 3\n"),
        "{out:?}"
    );
}

#[test]
fn the_tty_view_draws_the_steps() {
    let d = daemon_or_fail!();
    let ctx = tempfile::tempdir().unwrap();
    write(
        ctx.path(),
        "Dockerfile",
        &format!(
            "FROM {IMAGE} AS a\nRUN echo in-a\nFROM {IMAGE}\nCOPY --from=a /etc/hostname /h\n"
        ),
    );
    let out = ok(d.berth(&["build", "--progress=tty", ctx.path().to_str().unwrap()]));
    let s = &out.stdout;
    assert!(s.contains("[+] Building "), "{s}");
    assert!(s.contains(" FINISHED"), "{s}");
    assert!(
        s.contains(" => [a 1/4] FROM berth-test-bb:latest AS a"),
        "{s}"
    );
    assert!(s.contains(" => [a 2/4] RUN echo in-a"), "{s}");
    assert!(
        s.contains(" => [4/4] COPY --from=a /etc/hostname /h"),
        "{s}"
    );
    assert!(s.contains("\nBuilt sha256:"), "{s}");
    assert!(s.contains("\x1b[2K"), "{s}");
}

#[test]
fn context_and_usage_errors_in_docker_words() {
    // no daemon needed: these fail before connecting
    let run = |args: &[&str]| {
        let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_berth"));
        c.env("BERTH_HOST", "unix:///nonexistent/berth.sock")
            .args(args);
        berth_tests::run_with_timeout(&mut c, common::TIMEOUT)
    };
    let out = run(&["build"]);
    assert_eq!(out.code(), 1);
    assert!(
        out.stderr
            .starts_with("berth: 'berth build' requires 1 argument\n\nUsage:  berth build [OPTIONS] PATH | URL | -\n"),
        "{out:?}"
    );
    let out = run(&["image", "build", "a", "b"]);
    assert_eq!(out.code(), 1);
    assert!(
        out.stderr
            .starts_with("berth: 'berth image build' requires 1 argument"),
        "{out:?}"
    );
    let out = run(&["build", "/nonexistent/ctx"]);
    assert_eq!(out.code(), 1);
    assert_eq!(
        out.stderr,
        "unable to prepare context: path \"/nonexistent/ctx\" not found\n"
    );
    let ctx = tempfile::tempdir().unwrap();
    let dir = ctx.path().canonicalize().unwrap();
    let out = run(&["build", dir.to_str().unwrap()]);
    assert_eq!(out.code(), 1);
    assert_eq!(
        out.stderr,
        format!(
            "unable to prepare context: unable to evaluate symlinks in Dockerfile path: \
             lstat {}/Dockerfile: no such file or directory\n",
            dir.display()
        )
    );
    let out = run(&[
        "build",
        "-f",
        "/nonexistent/Dockerfile",
        dir.to_str().unwrap(),
    ]);
    assert_eq!(
        out.stderr,
        "unable to prepare context: unable to evaluate symlinks in Dockerfile path: \
         lstat /nonexistent: no such file or directory\n"
    );
    let out = run(&["build", "-f", "-", "-"]);
    assert_eq!(
        out.stderr,
        "invalid argument: can't use stdin for both build context and dockerfile\n"
    );
}

#[test]
fn the_tty_view_puts_each_lines_of_parallel_steps_under_its_own_step() {
    let d = daemon_or_fail!();
    let ctx = tempfile::tempdir().unwrap();
    write(
        ctx.path(),
        "Dockerfile",
        &format!(
            "FROM {IMAGE} AS a\n\
             RUN for i in $(seq 1 30); do echo from-a-$i; sleep 0.02; done\n\
             FROM {IMAGE} AS b\n\
             RUN for i in $(seq 1 30); do echo from-b-$i; sleep 0.02; done; exit 3\n\
             FROM {IMAGE}\n\
             COPY --from=a /etc/hostname /a\n\
             COPY --from=b /etc/hostname /b\n"
        ),
    );
    let out = d.berth(&["build", "--progress=tty", ctx.path().to_str().unwrap()]);
    assert!(!out.status.success(), "{out:?}");
    // The failed step's last lines, as the view prints them after the build.
    let s = format!("{}{}", out.stdout, out.stderr);
    let failed = s
        .split(" > [b 4/7] RUN ")
        .nth(1)
        .unwrap_or_else(|| panic!("no failed step in {s}"));
    let logs: Vec<&str> = failed
        .lines()
        .skip(1)
        .take_while(|l| !l.starts_with("------"))
        .collect();
    assert!(logs.iter().any(|l| l.contains("from-b-30")), "{s}");
    assert!(!logs.iter().any(|l| l.contains("from-a")), "{s}");
}
