//! The engine against outputs of Go's text/template and docker's functions.

use super::*;

fn data() -> Value {
    serde_json::from_str(
        r#"{
        "Id": "abc123",
        "Name": "/web",
        "State": {"Status": "running", "Running": true, "Pid": 1234, "ExitCode": 0},
        "Created": 1700000000,
        "Ratio": 1.7e9,
        "Half": 0.5,
        "Config": {
            "Env": ["A=1", "B=2"],
            "Cmd": ["sh", "-c", "echo hi"],
            "Labels": {"com.example.b": "2", "com.example.a": "1"},
            "Healthcheck": null
        },
        "Mounts": [
            {"Type": "bind", "Source": "/src", "Destination": "/dst"},
            {"Type": "volume", "Source": "/var/lib/v", "Destination": "/data"}
        ],
        "NetworkSettings": {"Networks": {"bridge": {"IPAddress": "172.17.0.2"}, "app": {"IPAddress": "10.0.0.2"}}},
        "Empty": [],
        "Text": "hello world"
    }"#,
    )
    .unwrap_or_default()
}

fn run(t: &str) -> Result<String, String> {
    let tmpl = Template::parse(t).map_err(|e| e.0)?;
    tmpl.execute(&data(), &Options::default()).map_err(|e| e.0)
}

fn ok(t: &str) -> String {
    match run(t) {
        Ok(s) => s,
        Err(e) => panic!("{t}: {e}"),
    }
}

fn err(t: &str) -> String {
    match run(t) {
        Ok(s) => panic!("{t}: no error, output {s:?}"),
        Err(e) => e,
    }
}

#[test]
fn fields_and_printing() {
    assert_eq!(
        ok("{{.Id}} {{.State.Status}} {{.State.Pid}}"),
        "abc123 running 1234"
    );
    assert_eq!(ok("{{.Config.Env}}"), "[A=1 B=2]");
    assert_eq!(
        ok("{{.Config.Labels}}"),
        "map[com.example.a:1 com.example.b:2]"
    );
    assert_eq!(
        ok("{{.Created}} {{.Ratio}} {{.Half}}"),
        "1700000000 1.7e+09 0.5"
    );
    assert_eq!(ok("{{.Config.Labels.nope}}"), "<no value>");
    assert_eq!(ok("{{.Config.Healthcheck}}"), "<no value>");
    assert_eq!(ok("{{.State.Running}}"), "true");
    assert_eq!(ok("{{.Empty}}"), "[]");
    assert!(ok("{{$.Id}}{{.}}").starts_with("abc123map["));
}

#[test]
fn control_structures() {
    assert_eq!(
        ok("{{range .Mounts}}{{.Source}}:{{.Destination}} {{end}}"),
        "/src:/dst /var/lib/v:/data "
    );
    assert_eq!(
        ok("{{range $i, $m := .Mounts}}{{$i}}={{$m.Type}};{{end}}"),
        "0=bind;1=volume;"
    );
    assert_eq!(
        ok("{{range $k, $v := .NetworkSettings.Networks}}{{$k}}:{{$v.IPAddress}} {{end}}"),
        "app:10.0.0.2 bridge:172.17.0.2 "
    );
    assert_eq!(ok("{{range .Empty}}x{{else}}none{{end}}"), "none");
    assert_eq!(ok("{{range .Config.Labels.nope}}x{{end}}"), "");
    assert_eq!(
        ok("{{if eq .State.Status \"exited\"}}E{{else if .State.Running}}R{{else}}?{{end}}"),
        "R"
    );
    assert_eq!(ok("{{with .State}}{{.Pid}}{{end}}"), "1234");
    assert_eq!(ok("{{with .Empty}}x{{else}}empty{{end}}"), "empty");
    assert_eq!(ok("{{range 3}}{{.}}{{end}}"), "012");
    assert_eq!(
        ok("{{range .Config.Env}}{{if eq . \"B=2\"}}{{break}}{{end}}{{.}},{{end}}"),
        "A=1,"
    );
    assert_eq!(
        ok("{{range .Config.Env}}{{if eq . \"A=1\"}}{{continue}}{{end}}{{.}}{{end}}"),
        "B=2"
    );
    assert_eq!(ok("{{$x := 1}}{{if true}}{{$x = 2}}{{end}}{{$x}}"), "2");
    assert_eq!(
        ok("{{define \"t\"}}[{{.}}]{{end}}{{template \"t\" .Id}}"),
        "[abc123]"
    );
    assert_eq!(ok("{{/* a comment */}}x"), "x");
}

#[test]
fn trim_markers() {
    assert_eq!(ok("a  {{- .Id -}}  b"), "aabc123b");
    assert_eq!(
        ok("{{range .Mounts -}}\n  {{.Type}}\n{{- end}}"),
        "bindvolume"
    );
    assert_eq!(ok("{{- /* c */ -}} x"), "x");
}

#[test]
fn functions() {
    assert_eq!(
        ok("{{json .State}}"),
        r#"{"Status":"running","Running":true,"Pid":1234,"ExitCode":0}"#
    );
    assert_eq!(ok("{{json .Config.Env}}"), r#"["A=1","B=2"]"#);
    assert_eq!(ok("{{json .Config.Labels.nope}}"), "null");
    assert_eq!(ok("{{join .Config.Cmd \" \"}}"), "sh -c echo hi");
    assert_eq!(
        ok("{{.Name | upper}} {{lower \"AbC\"}} {{title .Text}}"),
        "/WEB abc Hello World"
    );
    assert_eq!(ok("{{split .Text \" \"}}"), "[hello world]");
    assert_eq!(ok("{{index (split .Text \" \") 1}}"), "world");
    assert_eq!(
        ok("{{truncate .Id 3}}|{{pad .Id 1 2}}|{{pad \"\" 1 1}}|"),
        "abc| abc123  ||"
    );
    assert_eq!(
        ok("{{len .Mounts}} {{len .Text}} {{len .Config.Labels}}"),
        "2 11 2"
    );
    assert_eq!(ok("{{index .Config.Env 1}}"), "B=2");
    assert_eq!(ok("{{index .Config.Labels \"com.example.a\"}}"), "1");
    assert_eq!(ok("[{{index .Config.Labels \"missing\"}}]"), "[]");
    assert_eq!(
        ok("{{index .NetworkSettings.Networks \"bridge\" \"IPAddress\"}}"),
        "172.17.0.2"
    );
    assert_eq!(ok("{{printf \"%s-%05d\" .Id .State.Pid}}"), "abc123-01234");
    assert_eq!(ok("{{print .Id 1 2 \"x\"}}"), "abc1231 2x");
    assert_eq!(ok("{{println .Id .State.Pid}}"), "abc123 1234\n");
    assert_eq!(
        ok("{{and 1 0 2}} {{or 0 \"\" \"x\"}} {{not .Empty}}"),
        "0 x true"
    );
    assert_eq!(
        ok("{{lt 1 2}} {{le 2 2}} {{gt .State.Pid 1000}} {{ge \"a\" \"b\"}} {{ne .Id \"x\"}}"),
        "true true true false true"
    );
    assert_eq!(ok("{{eq .State.Status \"a\" \"running\"}}"), "true");
    assert_eq!(ok("{{slice .Id 1 3}}"), "bc");
    assert_eq!(
        ok("{{html \"<a&b>\"}} {{urlquery \"a b&c\"}}"),
        "&lt;a&amp;b&gt; a+b%26c"
    );
    assert_eq!(ok("{{(index .Mounts 0).Source}}"), "/src");
    assert_eq!(ok("{{.State.Status | printf \"%q\"}}"), "\"running\"");
    assert_eq!(ok("{{'a'}} {{0x10}} {{1e3}} {{-5}}"), "97 16 1000 -5");
}

#[test]
fn parse_errors_are_go_s() {
    assert_eq!(
        err("{{foo}}"),
        r#"template: :1: function "foo" not defined"#
    );
    assert_eq!(err("{{.Id"), "template: :1: unclosed action");
    assert_eq!(
        err("{{range .Mounts}}{{.Source}}"),
        "template: :1: unexpected EOF"
    );
    assert_eq!(err("{{end}}"), "template: :1: unexpected {{end}}");
    assert_eq!(err("{{else}}"), "template: :1: unexpected {{else}}");
    assert_eq!(err("{{}}"), "template: :1: missing value for command");
    assert_eq!(ok("{{.Id | }}"), "abc123");
    assert_eq!(err("{{if}}x{{end}}"), "template: :1: missing value for if");
    assert_eq!(err("{{$x}}"), r#"template: :1: undefined variable "$x""#);
    assert_eq!(err("{{\"abc}}"), "template: :1: unterminated quoted string");
    assert_eq!(
        err("{{.Id | \"x\"}}"),
        "template: :1: non executable command in pipeline stage 2"
    );
    assert_eq!(
        err("{{break}}"),
        "template: :1: {{break}} outside {{range}}"
    );
    assert_eq!(err("{{(.Id}}"), "template: :1: unclosed left paren");
    assert_eq!(err("{{.Id)}}"), "template: :1: unexpected right paren");
    assert_eq!(
        err("x\n{{.Id}}\n{{.A b}}"),
        r#"template: :3: function "b" not defined"#
    );
    assert_eq!(err("{{.Id}"), "template: :1: bad character U+007D '}'");
    assert_eq!(err("{{.Id }"), r#"template: :1: unexpected "}" in operand"#);
    assert_eq!(err("{{3x}}"), r#"template: :1: bad number syntax: "3x""#);
    assert_eq!(
        err("{{with .X}}a{{else}}b{{else}}c{{end}}"),
        "template: :1: expected end; found {{else}}"
    );
}

#[test]
fn exec_errors_are_go_s() {
    assert_eq!(
        err("{{.Nope}}"),
        r#"template: :1:2: executing "" at <.Nope>: map has no entry for key "Nope""#
    );
    assert_eq!(
        err("x {{.State.Nope}}"),
        r#"template: :1:10: executing "" at <.State.Nope>: map has no entry for key "Nope""#
    );
    assert_eq!(
        err("{{index .Config.Env 5}}"),
        r#"template: :1:2: executing "" at <index .Config.Env 5>: error calling index: index out of range: 5"#
    );
    assert_eq!(
        err("{{join .Id}}"),
        r#"template: :1:2: executing "" at <join>: wrong number of args for join: want 2 got 1"#
    );
    assert_eq!(
        err("{{upper .State.Pid}}"),
        r#"template: :1:14: executing "" at <.State.Pid>: wrong type for value; expected string; got json.Number"#
    );
    assert_eq!(
        err("{{.Config.Healthcheck.Test}}"),
        r#"template: :1:9: executing "" at <.Config.Healthcheck.Test>: nil pointer evaluating interface {}.Test"#
    );
    assert_eq!(
        err("{{range .Id}}{{end}}"),
        r#"template: :1:8: executing "" at <.Id>: range can't iterate over abc123"#
    );
    assert_eq!(
        err("{{.Id 1}}"),
        r#"template: :1:2: executing "" at <.Id>: Id is not a method but has arguments"#
    );
}

#[test]
fn header_functions_keep_the_names() {
    let t =
        Template::parse("{{.Names | upper}}\t{{json .ID}}\t{{truncate .Image 2}}\t{{pad .ID 1 1}}")
            .unwrap_or_else(|e| panic!("{e}"));
    let header: Value =
        serde_json::from_str(r#"{"Names":"NAMES","ID":"CONTAINER ID","Image":"IMAGE"}"#)
            .unwrap_or_default();
    let opts = Options {
        header: true,
        missing: Missing::NoValue,
        method: None,
    };
    assert_eq!(
        t.execute(&header, &opts).unwrap_or_default(),
        "NAMES\tCONTAINER ID\tIMAGE\t CONTAINER ID "
    );
}
