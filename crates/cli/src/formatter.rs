//! `--format` as the docker CLI runs it: list contexts (`table` with a header row and aligned
//! columns, `json`, custom templates), inspect templates over the raw objects, and templates
//! over one object (version, info, events). The engine is [`crate::template`].

use anyhow::Result;

use crate::status;
use crate::tabwriter::tabwrite;
use crate::template::{Methods, Missing, Options, Template, Value};

/// Parses a template; a bad one is docker's "template parsing error: ..." (exit status 1).
pub fn parse(format: &str) -> Result<Template> {
    Template::parse(format).map_err(|e| anyhow::anyhow!("template parsing error: {e}"))
}

/// Parses a template named `name`; a bad one ends the command with `code` (docker's 64 for
/// inspect, version and info).
pub fn parse_or_exit(name: &str, format: &str, code: i32) -> Result<Template> {
    Template::parse_named(name, format)
        .map_err(|e| status(code, format!("template parsing error: {e}")))
}

/// Runs a template over one object (version, info, events: missing keys of objects that look
/// like structs are errors, as in docker's typed structs).
pub fn render(t: &Template, data: &Value) -> Result<String> {
    t.execute(data, &Options::default())
        .map_err(|e| anyhow::anyhow!("template parsing error: {e}"))
}

/// docker's `preFormat`: `table` stripped, `json` as `{{json .}}`, spaces trimmed, `\t` and
/// `\n` written as escapes turned into tabs and newlines. Whether it is a table.
fn pre_format(format: &str) -> (String, bool) {
    let (f, table) = if let Some(rest) = format.strip_prefix("table") {
        (rest, true)
    } else if format == "json" {
        ("{{json .}}", false)
    } else {
        (format, false)
    };
    (
        f.trim_matches(' ')
            .replace("\\t", "\t")
            .replace("\\n", "\n"),
        table,
    )
}

/// `{{.Label "key"}}` of docker's list contexts.
struct LabelMethod<'a>(&'a serde_json::Value);

impl Methods for LabelMethod<'_> {
    fn has(&self, name: &str) -> bool {
        name == "Label"
    }

    fn call(&self, _name: &str, args: &[Value]) -> Result<Value, String> {
        match args {
            [Value::Str(k)] => Ok(Value::Str(
                self.0
                    .get(k)
                    .and_then(serde_json::Value::as_str)
                    .unwrap_or("")
                    .to_string(),
            )),
            [other] => Err(format!(
                "wrong type for value; expected string; got {}",
                other.type_name()
            )),
            _ => Err(format!(
                "wrong number of args for Label: want 1 got {}",
                args.len()
            )),
        }
    }
}

/// `{{.Label "com.example.key"}}` in a table header: `key`, its `-` and `_` as spaces.
struct HeaderLabel;

impl Methods for HeaderLabel {
    fn has(&self, name: &str) -> bool {
        name == "Label"
    }

    fn call(&self, _name: &str, args: &[Value]) -> Result<Value, String> {
        match args {
            [Value::Str(k)] => Ok(Value::Str(
                k.rsplit('.').next().unwrap_or("").replace(['-', '_'], " "),
            )),
            _ => Err("wrong number of args for Label: want 1".into()),
        }
    }
}

/// A docker list: the Go type of its context (named in errors), the column names of its
/// fields, each item's labels (for `{{.Label "key"}}`).
pub struct List<'a> {
    pub ctx: &'static str,
    pub headers: &'a [(&'a str, &'a str)],
    pub labels: Option<&'a [serde_json::Value]>,
}

/// Prints `items` with `format` as docker's formatter does.
pub fn print_items(format: &str, items: &[serde_json::Value], list: &List<'_>) -> Result<()> {
    print!("{}", format_items(format, items, list)?);
    Ok(())
}

/// The text [`print_items`] prints.
pub fn format_items(format: &str, items: &[serde_json::Value], list: &List<'_>) -> Result<String> {
    let (labels, headers) = (list.labels, list.headers);
    let (f, table) = pre_format(format);
    let t = parse(&f)?;
    let mut text = String::new();
    for (i, it) in items.iter().enumerate() {
        let m = labels.and_then(|l| l.get(i)).map(LabelMethod);
        let opts = Options {
            missing: Missing::Struct(list.ctx),
            header: false,
            method: m.as_ref().map(|m| m as &dyn Methods),
        };
        let row = t
            .execute(&Value::from(it), &opts)
            .map_err(|e| anyhow::anyhow!("failed to execute template: {e}"))?;
        text.push_str(&row);
        text.push('\n');
    }
    if !table {
        return Ok(text);
    }
    let header = Value::Map(
        headers
            .iter()
            .map(|(k, v)| (k.to_string(), Value::Str(v.to_string())))
            .collect(),
    );
    let opts = Options {
        missing: Missing::NoValue,
        header: true,
        method: Some(&HeaderLabel),
    };
    let mut all = t.execute_partial(&header, &opts);
    all.push('\n');
    all.push_str(&text);
    Ok(tabwrite(&all))
}

/// docker's inspect with `--format`: each object (raw JSON) through the template, or `json`
/// (a compact array). The text to print and the errors of the objects that failed; a
/// template that does not parse ends the command with status 64.
pub fn inspect(format: &str, raws: &[Vec<u8>]) -> Result<(String, Vec<String>)> {
    if format == "json" {
        let parts: Vec<String> = raws.iter().map(|r| compact_json(r)).collect();
        return Ok((format!("[{}]\n", parts.join(",")), Vec::new()));
    }
    let t = parse_or_exit("", format, 64)?;
    let mut out = String::new();
    let mut errors = Vec::new();
    for raw in raws {
        let v: Value = match serde_json::from_slice(raw) {
            Ok(v) => v,
            Err(e) => {
                errors.push(format!("unable to read inspect data: {e}"));
                continue;
            }
        };
        match t.execute(&v, &Options::default()) {
            Ok(s) => {
                out.push_str(&s);
                out.push('\n');
            }
            Err(e) => errors.push(format!("template parsing error: {e}")),
        }
    }
    if out.is_empty() {
        out.push('\n');
    }
    Ok((out, errors))
}

/// Go's `json.Compact`: the JSON text without the spaces between its tokens.
pub fn compact_json(raw: &[u8]) -> String {
    let s = String::from_utf8_lossy(raw);
    let mut out = String::with_capacity(s.len());
    let mut in_str = false;
    let mut esc = false;
    for c in s.chars() {
        if in_str {
            out.push(c);
            if esc {
                esc = false;
            } else if c == '\\' {
                esc = true;
            } else if c == '"' {
                in_str = false;
            }
        } else if c == '"' {
            in_str = true;
            out.push(c);
        } else if !c.is_whitespace() {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tables_have_a_header_row() {
        let items = vec![
            json!({"ID": "abc", "Names": "web", "Image": "busybox"}),
            json!({"ID": "def", "Names": "db", "Image": "postgres:16"}),
        ];
        let headers = [
            ("ID", "CONTAINER ID"),
            ("Names", "NAMES"),
            ("Image", "IMAGE"),
        ];
        let labels = vec![json!({"a": "1"}), json!({})];
        let list = |labels| List {
            ctx: "*formatter.ContainerContext",
            headers: &headers,
            labels,
        };
        let out = format_items(
            "table {{.ID}}\\t{{.Names | upper}}\\t{{.Label \"com.x.team-a\"}}",
            &items,
            &list(Some(&labels)),
        )
        .unwrap_or_default();
        assert_eq!(
            out,
            "CONTAINER ID   NAMES     team a\nabc            WEB       \ndef            DB        \n"
        );
        let out = format_items("json", &items[..1], &list(None)).unwrap_or_default();
        assert_eq!(
            out,
            "{\"ID\":\"abc\",\"Image\":\"busybox\",\"Names\":\"web\"}\n"
        );
        let out = format_items("{{.Names}}={{.Label \"a\"}}", &items, &list(Some(&labels)))
            .unwrap_or_default();
        assert_eq!(out, "web=1\ndb=\n");
        let e = format_items("{{.Nope}}", &items, &list(None))
            .err()
            .map(|e| e.to_string());
        assert_eq!(
            e.as_deref(),
            Some(
                r#"failed to execute template: template: :1:2: executing "" at <.Nope>: can't evaluate field Nope in type *formatter.ContainerContext"#
            )
        );
    }

    #[test]
    fn inspect_keeps_the_key_order() {
        let raw = br#"{"Id": "x", "State": {"Status": "running", "Pid": 7}}"#.to_vec();
        let (out, errs) = inspect("{{json .State}} {{.State.Pid}}", std::slice::from_ref(&raw))
            .unwrap_or_default();
        assert_eq!(out, "{\"Status\":\"running\",\"Pid\":7} 7\n");
        assert!(errs.is_empty());
        let (out, _) = inspect("json", &[raw]).unwrap_or_default();
        assert_eq!(
            out,
            "[{\"Id\":\"x\",\"State\":{\"Status\":\"running\",\"Pid\":7}}]\n"
        );
    }
}
