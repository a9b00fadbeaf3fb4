//! `berth context` over the docker CLI's own store: contexts made by either CLI are seen and
//! used by the other (create, ls, use, inspect, rm, export, import), `--context`,
//! `DOCKER_CONTEXT`/`BERTH_CONTEXT` and config.json's `currentContext`; a context with TLS
//! material reaches a `--tlsverify` daemon.

#![allow(clippy::unwrap_used)]

mod common;
#[path = "common/certs.rs"]
mod tls_certs;

use std::path::Path;
use std::process::Output;

use common::{berth_binary, run_env, skip, text, DOCKER};
use tls_certs::Certs;

/// Both CLIs with the same configuration directory (and HOME), no DOCKER_HOST.
struct Clis {
    home: tempfile::TempDir,
}

impl Clis {
    fn env(&self) -> Vec<(&'static str, String)> {
        let home = self.home.path().display().to_string();
        vec![
            ("HOME", home.clone()),
            ("DOCKER_CONFIG", format!("{home}/.docker")),
        ]
    }

    fn run(&self, program: &Path, args: &[&str], extra: &[(&str, &str)]) -> Output {
        let env = self.env();
        let mut all: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        all.extend_from_slice(extra);
        run_env(program, args, &all, None)
    }

    fn docker(&self, args: &[&str]) -> Output {
        self.run(Path::new(DOCKER), args, &[])
    }

    fn berth(&self, args: &[&str]) -> Output {
        self.run(&berth_binary(), args, &[])
    }
}

fn ok(out: Output, what: &str) -> String {
    let (o, e) = text(&out);
    assert!(
        out.status.success(),
        "{what} failed ({}): {o}{e}",
        out.status
    );
    o
}

fn fails(out: Output, what: &str) -> String {
    let (o, e) = text(&out);
    assert!(!out.status.success(), "{what} succeeded: {o}{e}");
    e
}

#[test]
fn contexts_shared_with_the_docker_cli() {
    if skip() {
        return;
    }
    let certs = Certs::make();
    let (d, port) = certs.daemon();
    let tcp = format!("tcp://127.0.0.1:{port}");
    d.busybox("busybox");
    d.ok(&["create", "--name", "marker", "busybox", "true"]);
    let clis = Clis {
        home: tempfile::tempdir().unwrap(),
    };
    let sock = format!("unix://{}", d.socket.display());
    let names = ["ps", "-a", "--format", "{{.Names}}"];
    let reaches = |out: Output, what: &str| assert_eq!(ok(out, what).trim(), "marker", "{what}");
    let (cca, ccert, ckey) = (
        certs.path("ca.pem"),
        certs.path("client-cert.pem"),
        certs.path("client-key.pem"),
    );

    // Made by docker, used by berth: TCP with the TLS material copied into the store.
    let spec = format!("host={tcp},ca={cca},cert={ccert},key={ckey}");
    ok(
        clis.docker(&[
            "context",
            "create",
            "dtls",
            "--docker",
            &spec,
            "--description",
            "by docker",
        ]),
        "docker context create",
    );
    let mut args = vec!["--context", "dtls"];
    args.extend_from_slice(&names);
    reaches(clis.berth(&args), "berth --context dtls ps");
    reaches(
        clis.run(&berth_binary(), &names, &[("DOCKER_CONTEXT", "dtls")]),
        "DOCKER_CONTEXT=dtls berth ps",
    );
    reaches(
        clis.run(&berth_binary(), &names, &[("BERTH_CONTEXT", "dtls")]),
        "BERTH_CONTEXT=dtls berth ps",
    );
    let ctx_of = [
        "--context",
        "dtls",
        "version",
        "--format",
        "{{.Client.Context}}",
    ];
    assert_eq!(ok(clis.berth(&ctx_of), "berth version").trim(), "dtls");
    assert_eq!(ok(clis.docker(&ctx_of), "docker version").trim(), "dtls");
    // Both inspect it alike.
    let theirs: serde_json::Value = serde_json::from_str(&ok(
        clis.docker(&["context", "inspect", "dtls"]),
        "docker inspect",
    ))
    .unwrap();
    let ours: serde_json::Value = serde_json::from_str(&ok(
        clis.berth(&["context", "inspect", "dtls"]),
        "berth inspect",
    ))
    .unwrap();
    assert_eq!(ours, theirs);

    // Made by berth, used by docker: the unix socket.
    ok(
        clis.berth(&[
            "context",
            "create",
            "bunix",
            "--docker",
            &format!("host={sock}"),
            "--description",
            "by berth",
        ]),
        "berth context create",
    );
    let mut args = vec!["--context", "bunix"];
    args.extend_from_slice(&names);
    reaches(clis.docker(&args), "docker --context bunix ps");
    let theirs: serde_json::Value = serde_json::from_str(&ok(
        clis.docker(&["context", "inspect", "bunix"]),
        "docker inspect",
    ))
    .unwrap();
    let ours: serde_json::Value = serde_json::from_str(&ok(
        clis.berth(&["context", "inspect", "bunix"]),
        "berth inspect",
    ))
    .unwrap();
    assert_eq!(ours, theirs);
    let e = fails(
        clis.berth(&["context", "create", "bunix", "--docker", "host=unix:///x"]),
        "create twice",
    );
    assert!(e.contains("context \"bunix\" already exists"), "{e}");
    let e = fails(
        clis.berth(&["-H", &sock, "--context", "bunix", "ps"]),
        "-H and --context",
    );
    assert!(
        e.contains("conflicting options: either specify --host or --context, not both"),
        "{e}"
    );

    // `use` by either is the other's current context.
    ok(clis.berth(&["context", "use", "dtls"]), "berth context use");
    assert_eq!(
        ok(clis.docker(&["context", "show"]), "docker context show").trim(),
        "dtls"
    );
    reaches(clis.docker(&names), "docker ps (current context dtls)");
    ok(
        clis.docker(&["context", "use", "bunix"]),
        "docker context use",
    );
    reaches(clis.berth(&names), "berth ps (current context bunix)");
    // The lists match, but for the default context's socket (docker's own default).
    let fmt = "{{.Name}}|{{.Current}}|{{.Description}}|{{.DockerEndpoint}}";
    let list = |out: Output| -> Vec<String> {
        ok(out, "context ls")
            .lines()
            .filter(|l| !l.starts_with("default|"))
            .map(str::to_string)
            .collect()
    };
    let ours = list(clis.berth(&["context", "ls", "--format", fmt]));
    assert_eq!(ours, list(clis.docker(&["context", "ls", "--format", fmt])));
    assert_eq!(
        ours,
        [
            format!("bunix|true|by berth|{sock}"),
            format!("dtls|false|by docker|{tcp}"),
        ]
    );
    let table = ok(clis.berth(&["context", "ls"]), "berth context ls");
    assert!(table.starts_with("NAME"), "{table}");
    assert!(table.contains("bunix *"), "{table}");

    // Export by one, import by the other, both ways.
    let file = clis.home.path().join("dtls.dockercontext");
    let file = file.to_str().unwrap();
    ok(
        clis.berth(&["context", "export", "dtls", file]),
        "berth context export",
    );
    ok(
        clis.docker(&["context", "import", "dimported", file]),
        "docker context import",
    );
    let mut args = vec!["--context", "dimported"];
    args.extend_from_slice(&names);
    reaches(clis.docker(&args), "docker --context dimported ps");
    let file2 = clis.home.path().join("bunix.dockercontext");
    let file2 = file2.to_str().unwrap();
    ok(
        clis.docker(&["context", "export", "dtls", file2]),
        "docker context export",
    );
    ok(
        clis.berth(&["context", "import", "bimported", file2]),
        "berth context import",
    );
    let mut args = vec!["--context", "bimported"];
    args.extend_from_slice(&names);
    reaches(clis.berth(&args), "berth --context bimported ps");

    // rm: the current context only with -f, which makes `default` current again.
    let e = fails(
        clis.berth(&["context", "rm", "bunix"]),
        "rm of the current context",
    );
    assert!(e.contains("is in use"), "{e}");
    ok(
        clis.berth(&["context", "rm", "-f", "bunix", "dimported"]),
        "berth context rm -f",
    );
    assert_eq!(
        ok(clis.docker(&["context", "show"]), "docker context show").trim(),
        "default"
    );
    let left = ok(
        clis.docker(&["context", "ls", "-q"]),
        "docker context ls -q",
    );
    assert_eq!(
        left.lines().collect::<Vec<_>>(),
        ["bimported", "default", "dtls"]
    );
    ok(clis.docker(&["context", "rm", "dtls"]), "docker context rm");
    let left = ok(clis.berth(&["context", "ls", "-q"]), "berth context ls -q");
    assert_eq!(left.lines().collect::<Vec<_>>(), ["bimported", "default"]);
    // A context that does not exist.
    let e = fails(clis.berth(&["--context", "nope", "ps"]), "--context nope");
    assert!(e.contains("context \"nope\": context not found"), "{e}");
}
