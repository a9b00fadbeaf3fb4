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
