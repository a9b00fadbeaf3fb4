#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions unwrap too

//! `--format` of the project's CLI against the real docker CLI: the same Go templates run
//! through `docker` and `berth` against one berthd must print the same text (range over lists
//! and maps with variables, if/else if, with, index, json, join, split, upper/lower/title,
//! printf/println, trim markers, `table` with its header row, `json`), and fail the same way
//! (template parsing errors, missing keys).

mod common;

use common::{skip, Daemon};

/// Runs `args` through both CLIs; a description of the difference, if any.
fn compare(d: &Daemon, args: &[&str]) -> Option<String> {
    let docker = d.docker(args);
    let berth = d.berth(args);
    let out = |o: &std::process::Output| String::from_utf8_lossy(&o.stdout).into_owned();
    let err = |o: &std::process::Output| String::from_utf8_lossy(&o.stderr).trim().to_string();
    let same = out(&docker) == out(&berth)
        && docker.status.code() == berth.status.code()
        && (docker.status.success() || err(&docker) == err(&berth));
    if same {
        return None;
    }
    Some(format!(
        "{args:?}\n  docker ({:?}): {:?} {:?}\n  berth  ({:?}): {:?} {:?}",
        docker.status.code(),
        out(&docker),
        err(&docker),
        berth.status.code(),
        out(&berth),
        err(&berth),
    ))
}

#[test]
fn templates_print_as_the_docker_clis() {
    if skip() {
        return;
    }
    let d = Daemon::start();
    d.busybox("bb");
    d.ok(&["volume", "create", "--label", "tier=data", "vol1"]);
    d.ok(&["network", "create", "appnet"]);
    d.ok(&[
        "create",
        "--name",
        "web",
        "--label",
        "com.example.team=a",
        "--label",
        "Maintainer=ops",
        "-e",
        "FOO=bar",
        "-e",
        "EMPTY=",
        "-v",
        "vol1:/data",
        "--network",
        "appnet",
        "bb",
        "sh",
        "-c",
        "echo <hi> & sleep 1",
    ]);

    let inspect_templates = [
        "{{range .Mounts}}{{.Name}}:{{.Destination}} {{end}}",
        "{{range $i, $e := .Config.Env}}{{$i}}={{$e}};{{end}}",
        "{{range $k, $v := .NetworkSettings.Networks}}{{$k}} {{end}}",
        r#"{{if eq .State.Status "running"}}R{{else if eq .State.Status "created"}}C{{else}}?{{end}}"#,
        r#"{{with .Config}}{{.Image}} {{join .Cmd ","}}{{end}}"#,
        r#"{{with .Config.Labels.nope}}yes{{else}}no{{end}}"#,
        r#"{{index .Config.Labels "com.example.team"}}|{{index .Config.Labels "missing"}}|"#,
        "{{json .Config.Labels}} {{json .Config.Cmd}}",
        r#"{{.Name | upper}} {{lower "ABC"}} {{title "hello world"}}"#,
        r#"{{split .Config.Image ":"}} {{len .Config.Env}} {{index (split "a:b" ":") 1}}"#,
        r#"{{println .Name}}{{printf "%.5s|%d|%q" .Name .RestartCount .Config.Image}}"#,
        "{{.Config.Labels}} {{.Config.Env}}",
        "{{.Config.Labels.nope}} {{.Config.Labels.Maintainer}}",
        "{{- range .Config.Env -}}\n  [{{.}}]\n{{- end}}",
        "{{.State.Pid}} {{.RestartCount}} {{.State.Running}} {{not .State.Running}}",
        r#"{{and .State.Running "x"}} {{or .State.Running "y"}} {{gt (len .Config.Env) 1}}"#,
        r#"{{$n := .Name}}{{range .Config.Cmd}}{{$n}}:{{.}} {{end}}"#,
        r#"{{truncate .Name 3}}|{{pad .Name 1 2}}|{{slice .Name 1 3}}"#,
        "{{.ID}} {{.Config.Hostname}}",
        "{{foo}}",
        "{{range .Mounts}}",
        "{{.Nope}}",
        "{{index .Config.Env 9}}",
        "{{upper .RestartCount}}",
    ];
    let mut diffs = Vec::new();
    for t in inspect_templates {
        diffs.extend(compare(&d, &["inspect", "--format", t, "web"]));
    }
    let others: &[&[&str]] = &[
        &[
            "ps",
            "-a",
            "--format",
            "table {{.Names}}\\t{{.Image}}\\t{{.Label \"com.example.team\"}}",
        ],
        &[
            "ps",
            "-a",
            "--format",
            "{{.Names}} {{.Labels}} {{.Names | upper}}",
        ],
        &[
            "ps",
            "-a",
            "--format",
            "table {{.Names | upper}}\\t{{json .Image}}",
        ],
        &["ps", "-a", "--format", "{{.Nope}}"],
        &["images", "--format", "table {{.Repository}}\\t{{.Tag}}"],
        &[
            "volume",
            "ls",
            "--format",
            "{{.Name}} {{.Driver}} {{.Label \"tier\"}}",
        ],
        &[
            "volume",
            "inspect",
            "--format",
            "{{.Name}} {{.Labels}}",
            "vol1",
        ],
        &["volume", "inspect", "--format", "json", "vol1"],
        &[
            "network",
            "ls",
            "--filter",
            "name=appnet",
            "--format",
            "table {{.Name}}\\t{{.Driver}}\\t{{.Label \"x\"}}",
        ],
        &[
            "network",
            "inspect",
            "--format",
            "{{.Name}} {{.Driver}} {{.Internal}}",
            "appnet",
        ],
        &[
            "version",
            "--format",
            "{{.Server.APIVersion}} {{.Server.Os}}",
        ],
        &["version", "--format", "{{foo}}"],
        &[
            "info",
            "--format",
            "{{.Containers}} {{.ContainersStopped}} {{json .Driver}}",
        ],
    ];
    for args in others {
        diffs.extend(compare(&d, args));
    }
    assert!(
        diffs.is_empty(),
        "{} of {} differ:\n{}",
        diffs.len(),
        inspect_templates.len() + others.len(),
        diffs.join("\n")
    );
}

/// `berth completion bash` sources in bash and completes the daemon's names through the
/// hidden `berth __complete KIND`; `berth man DIR` writes the pages.
#[test]
fn completions_list_the_daemons_names_and_man_pages_are_written() {
    if skip() {
        return;
    }
    let d = Daemon::start();
    d.busybox("bb");
    d.ok(&["create", "--name", "compbox", "bb", "true"]);
    d.ok(&["volume", "create", "compvol"]);
    d.ok(&["network", "create", "compnet"]);
    let lines = |kind: &str| {
        let out = d.berth(&["__complete", kind]);
        assert!(out.status.success(), "{kind}: {out:?}");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(String::from)
            .collect::<Vec<_>>()
    };
    assert_eq!(lines("containers"), ["compbox"]);
    assert!(lines("images").contains(&"bb:latest".to_string()));
    assert!(lines("volumes").contains(&"compvol".to_string()));
    assert!(lines("networks").contains(&"compnet".to_string()));

    let script = d.berth(&["completion", "bash"]);
    assert!(script.status.success());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("berth.bash");
    std::fs::write(&path, &script.stdout).unwrap();
    let berth = std::path::PathBuf::from(env!("CARGO_BIN_EXE_berthd")).with_file_name("berth");
    let host = format!("unix://{}", d.socket.display());
    // what bash offers after `berth -H SOCKET start com<TAB>` and `berth volume rm <TAB>`
    let probe = format!(
        "set -e; source {script}; complete -p berth\n\
         COMP_WORDS=(berth -H {host} start com); COMP_CWORD=4; _berth_with_names berth com start\n\
         echo \"start: ${{COMPREPLY[*]}}\"\n\
         COMP_WORDS=(berth -H {host} volume rm ''); COMP_CWORD=5; _berth_with_names berth '' rm\n\
         echo \"volume rm: ${{COMPREPLY[*]}}\"\n\
         COMP_WORDS=(berth ps --f); COMP_CWORD=2; _berth_with_names berth --f ps\n\
         echo \"ps: ${{COMPREPLY[*]}}\"",
        script = path.display(),
    );
    let out = std::process::Command::new("timeout")
        .args(["60", "bash", "-c", &probe])
        .env(
            "PATH",
            format!(
                "{}:{}",
                berth.parent().unwrap().display(),
                std::env::var("PATH").unwrap_or_default()
            ),
        )
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("start: compbox\n"), "{text}");
    assert!(text.contains("volume rm: compvol"), "{text}");
    assert!(
        text.contains("--filter") && text.contains("--format"),
        "{text}"
    );

    let man = tempfile::tempdir().unwrap();
    let out = d.berth(&["man", man.path().to_str().unwrap()]);
    assert!(out.status.success(), "{out:?}");
    for page in [
        "berth.1",
        "berth-ps.1",
        "berth-container-ls.1",
        "berth-network-create.1",
    ] {
        let text = std::fs::read_to_string(man.path().join(page)).unwrap();
        assert!(
            text.starts_with(".ie") || text.contains(".TH"),
            "{page}: {text}"
        );
    }
}
