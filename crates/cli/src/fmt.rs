//! Docker's output helpers: human durations and sizes, a Go-template subset, and a tabwriter
//! with docker's settings (minwidth 10, padding 3).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Result};
use serde_json::Value;

/// `units.HumanDuration`.
pub fn human_duration(d: Duration) -> String {
    let seconds = d.as_secs();
    if seconds < 1 {
        return "Less than a second".into();
    } else if seconds == 1 {
        return "1 second".into();
    } else if seconds < 60 {
        return format!("{seconds} seconds");
    }
    let minutes = seconds / 60;
    if minutes == 1 {
        return "About a minute".into();
    } else if minutes < 60 {
        return format!("{minutes} minutes");
    }
    let hours = (d.as_secs_f64() / 3600.0).round() as u64;
    if hours == 1 {
        "About an hour".into()
    } else if hours < 48 {
        format!("{hours} hours")
    } else if hours < 24 * 7 * 2 {
        format!("{} days", hours / 24)
    } else if hours < 24 * 30 * 2 {
        format!("{} weeks", hours / 24 / 7)
    } else if hours < 24 * 365 * 2 {
        format!("{} months", hours / 24 / 30)
    } else {
        format!("{} years", seconds / 3600 / 24 / 365)
    }
}

/// "3 minutes ago" for a unix time.
pub fn since_unix(secs: i64) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    format!(
        "{} ago",
        human_duration(Duration::from_secs((now - secs).max(0) as u64))
    )
}

/// Go's `%.3g` followed by a unit, as `units.HumanSizeWithPrecision(size, 3)`.
pub fn human_size(size: f64) -> String {
    human_size_prec(size, 3)
}

/// `units.HumanSize` (`%.4g`): the "Total reclaimed space" of the prunes.
pub fn human_size_4(size: f64) -> String {
    human_size_prec(size, 4)
}

fn human_size_prec(size: f64, precision: i32) -> String {
    const UNITS: [&str; 9] = ["B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"];
    let mut s = size;
    let mut i = 0;
    while s >= 1000.0 && i < UNITS.len() - 1 {
        s /= 1000.0;
        i += 1;
    }
    format!("{}{}", go_g(s, precision), UNITS[i])
}

/// `units.BytesSize` (binary units, `%.4g`), as `docker stats` prints memory.
pub fn bytes_size(size: f64) -> String {
    const UNITS: [&str; 9] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB"];
    let mut s = size;
    let mut i = 0;
    while s >= 1024.0 && i < UNITS.len() - 1 {
        s /= 1024.0;
        i += 1;
    }
    let t = format!("{s:.2}");
    let t = t.trim_end_matches('0').trim_end_matches('.').to_string();
    format!("{t}{}", UNITS[i])
}

/// Go's `%.{precision}g` for values below 10^precision.
fn go_g(v: f64, precision: i32) -> String {
    if v == 0.0 {
        return "0".into();
    }
    let digits = v.abs().log10().floor() as i32;
    let decimals = (precision - 1 - digits).max(0) as usize;
    let s = format!("{v:.decimals$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// `units.RAMInBytes`: `64m`, `1g`, `512k`, `100` (binary units, optional `b`).
pub fn ram_in_bytes(s: &str) -> Result<i64> {
    let t = s.trim().to_ascii_lowercase();
    let t = t.strip_suffix('b').unwrap_or(&t);
    let (num, mult) = match t.chars().last() {
        Some('k') => (&t[..t.len() - 1], 1i64 << 10),
        Some('m') => (&t[..t.len() - 1], 1 << 20),
        Some('g') => (&t[..t.len() - 1], 1 << 30),
        Some('t') => (&t[..t.len() - 1], 1 << 40),
        Some('p') => (&t[..t.len() - 1], 1 << 50),
        _ => (t, 1),
    };
    let n: f64 = num
        .parse()
        .map_err(|_| anyhow::anyhow!("invalid size: '{s}'"))?;
    if n < 0.0 {
        bail!("invalid size: '{s}'");
    }
    Ok((n * mult as f64) as i64)
}

/// Docker's `Ellipsis`: at most `max` characters, the last one `…` when cut.
pub fn ellipsis(s: &str, max: usize) -> String {
    let chars: Vec<char> = s.chars().collect();
    if chars.len() <= max {
        return s.to_string();
    }
    if max == 0 {
        return String::new();
    }
    let mut out: String = chars[..max - 1].iter().collect();
    out.push('…');
    out
}

/// A 12-character id without its `sha256:`.
pub fn short_id(id: &str) -> String {
    let id = id.strip_prefix("sha256:").unwrap_or(id);
    id.chars().take(12).collect()
}

/// Go's `strconv.Quote` for the printable strings containers have.
pub fn go_quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Go's `json.Marshal` of a value (sorted keys, HTML characters escaped).
pub fn go_json(v: &Value) -> String {
    let s = serde_json::to_string(v).unwrap_or_default();
    s.replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
}

/// Aligns tab-separated cells as Go's `tabwriter.NewWriter(w, 10, 1, 3, ' ', 0)`: every cell
/// terminated by a tab is padded to its column's width (at least 10, text + 3); the last cell
/// of a line is printed as is.
pub fn tabwrite(text: &str) -> String {
    let lines: Vec<Vec<&str>> = text
        .split_terminator('\n')
        .map(|l| l.split('\t').collect())
        .collect();
    let mut widths: Vec<usize> = Vec::new();
    for cells in &lines {
        for (i, c) in cells.iter().enumerate().take(cells.len().saturating_sub(1)) {
            let w = (c.chars().count() + 3).max(10);
            if widths.len() <= i {
                widths.push(w);
            } else if widths[i] < w {
                widths[i] = w;
            }
        }
    }
    let mut out = String::new();
    for cells in &lines {
        let n = cells.len();
        for (i, c) in cells.iter().enumerate() {
            out.push_str(c);
            if i + 1 < n {
                let pad = widths[i] - c.chars().count();
                out.push_str(&" ".repeat(pad));
            }
        }
        out.push('\n');
    }
    out
}

// --- Go templates (a subset) -------------------------------------------------------------------

#[derive(Debug, Clone)]
enum Node {
    Text(String),
    Action(Vec<Vec<Arg>>),
}

#[derive(Debug, Clone)]
enum Arg {
    Field(Vec<String>),
    Str(String),
    Num(f64),
    Func(String),
}

/// A parsed template.
#[derive(Debug, Clone)]
pub struct Template {
    nodes: Vec<Node>,
    /// `table ...`: print a header row.
    pub table: bool,
}

impl Template {
    /// Parses `format` as docker does: a `table ` prefix, `\t` and `\n` escapes.
    pub fn parse(format: &str) -> Result<Template> {
        let (table, rest) = match format.strip_prefix("table") {
            Some(r) => (true, r),
            None => (false, format),
        };
        let rest = if table { rest.trim() } else { rest };
        let rest = rest.replace("\\t", "\t").replace("\\n", "\n");
        let mut nodes = Vec::new();
        let mut s = rest.as_str();
        while let Some(start) = s.find("{{") {
            if start > 0 {
                nodes.push(Node::Text(s[..start].to_string()));
            }
            let after = &s[start + 2..];
            let end = after
                .find("}}")
                .ok_or_else(|| anyhow::anyhow!("template parsing error: unclosed action"))?;
            let inner = after[..end]
                .trim()
                .trim_start_matches('-')
                .trim_end_matches('-');
            nodes.push(Node::Action(parse_pipeline(inner.trim())?));
            s = &after[end + 2..];
        }
        if !s.is_empty() {
            nodes.push(Node::Text(s.to_string()));
        }
        Ok(Template { nodes, table })
    }

    /// Executes the template on `v`.
    pub fn render(&self, v: &Value) -> Result<String> {
        let mut out = String::new();
        for n in &self.nodes {
            match n {
                Node::Text(t) => out.push_str(t),
                Node::Action(p) => {
                    let val = eval_pipeline(p, v)?;
                    out.push_str(&to_text(&val));
                }
            }
        }
        Ok(out)
    }

    /// The header row of a table: each `{{.Field}}` replaced by its name in `headers`.
    pub fn header(&self, headers: &[(&str, &str)]) -> String {
        let mut out = String::new();
        for n in &self.nodes {
            match n {
                Node::Text(t) => out.push_str(t),
                Node::Action(p) => {
                    let field = p.iter().flatten().find_map(|a| match a {
                        Arg::Field(f) if !f.is_empty() => Some(f[0].clone()),
                        _ => None,
                    });
                    if let Some(f) = field {
                        let h = headers
                            .iter()
                            .find(|(k, _)| *k == f)
                            .map(|(_, h)| h.to_string())
                            .unwrap_or_else(|| f.to_uppercase());
                        out.push_str(&h);
                    }
                }
            }
        }
        out
    }
}

fn tokenize(s: &str) -> Result<Vec<String>> {
    let mut toks = Vec::new();
    let mut chars = s.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
        } else if c == '"' || c == '`' {
            let q = c;
            chars.next();
            let mut t = String::from("\"");
            let mut closed = false;
            while let Some(c) = chars.next() {
                if c == '\\' && q == '"' {
                    match chars.next() {
                        Some('n') => t.push('\n'),
                        Some('t') => t.push('\t'),
                        Some(o) => t.push(o),
                        None => {}
                    }
                } else if c == q {
                    closed = true;
                    break;
                } else {
                    t.push(c);
                }
            }
            if !closed {
                bail!("template parsing error: unterminated quoted string");
            }
            toks.push(t);
        } else if c == '|' {
            chars.next();
            toks.push("|".into());
        } else {
            let mut t = String::new();
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() || c == '|' {
                    break;
                }
                t.push(c);
                chars.next();
            }
            toks.push(t);
        }
    }
    Ok(toks)
}

fn parse_pipeline(s: &str) -> Result<Vec<Vec<Arg>>> {
    let toks = tokenize(s)?;
    let mut cmds = vec![Vec::new()];
    for t in toks {
        if t == "|" {
            cmds.push(Vec::new());
            continue;
        }
        let arg = if let Some(q) = t.strip_prefix('"') {
            Arg::Str(q.to_string())
        } else if t == "." {
            Arg::Field(Vec::new())
        } else if let Some(f) = t.strip_prefix('.') {
            Arg::Field(f.split('.').map(String::from).collect())
        } else if let Ok(n) = t.parse::<f64>() {
            Arg::Num(n)
        } else if matches!(
            t.as_str(),
            "json"
                | "upper"
                | "lower"
                | "title"
                | "len"
                | "index"
                | "join"
                | "split"
                | "println"
                | "print"
                | "truncate"
                | "pad"
        ) {
            Arg::Func(t)
        } else {
            bail!("template parsing error: function {t:?} not defined");
        };
        if let Some(last) = cmds.last_mut() {
            last.push(arg);
        }
    }
    if cmds.iter().any(Vec::is_empty) {
        bail!("template parsing error: missing value for command");
    }
    Ok(cmds)
}

fn lookup(v: &Value, path: &[String]) -> Value {
    let mut cur = v;
    for p in path {
        match cur.get(p) {
            Some(n) => cur = n,
            None => return Value::Null,
        }
    }
    cur.clone()
}

fn eval_arg(a: &Arg, dot: &Value) -> Value {
    match a {
        Arg::Field(f) => lookup(dot, f),
        Arg::Str(s) => Value::String(s.clone()),
        Arg::Num(n) => serde_json::Number::from_f64(*n)
            .map(Value::Number)
            .unwrap_or(Value::Null),
        Arg::Func(f) => Value::String(f.clone()),
    }
}

fn eval_pipeline(cmds: &[Vec<Arg>], dot: &Value) -> Result<Value> {
    let mut prev: Option<Value> = None;
    for cmd in cmds {
        let mut args: Vec<Value> = cmd[1..].iter().map(|a| eval_arg(a, dot)).collect();
        if let Some(p) = prev.take() {
            args.push(p);
        }
        let val = match &cmd[0] {
            Arg::Func(f) => call(f, &args)?,
            other => {
                if !args.is_empty() {
                    bail!("template: can't give argument to non-function");
                }
                eval_arg(other, dot)
            }
        };
        prev = Some(val);
    }
    Ok(prev.unwrap_or(Value::Null))
}

fn call(f: &str, args: &[Value]) -> Result<Value> {
    let first = args.first().cloned().unwrap_or(Value::Null);
    Ok(match f {
        "json" => Value::String(go_json(&first)),
        "upper" => Value::String(to_text(&first).to_uppercase()),
        "lower" => Value::String(to_text(&first).to_lowercase()),
        "title" => {
            let t = to_text(&first);
            let mut c = t.chars();
            Value::String(match c.next() {
                Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
                None => String::new(),
            })
        }
        "len" => Value::from(match &first {
            Value::Array(a) => a.len(),
            Value::Object(o) => o.len(),
            Value::String(s) => s.len(),
            _ => 0,
        }),
        "index" => {
            let mut cur = first;
            for k in &args[1..] {
                cur = match (&cur, k) {
                    (Value::Object(o), k) => o.get(&to_text(k)).cloned().unwrap_or(Value::Null),
                    (Value::Array(a), Value::Number(n)) => a
                        .get(n.as_f64().unwrap_or(0.0) as usize)
                        .cloned()
                        .unwrap_or(Value::Null),
                    _ => Value::Null,
                };
            }
            cur
        }
        "join" => {
            let sep = args.get(1).map(to_text).unwrap_or_default();
            match &first {
                Value::Array(a) => {
                    Value::String(a.iter().map(to_text).collect::<Vec<_>>().join(&sep))
                }
                other => Value::String(to_text(other)),
            }
        }
        "split" => {
            let sep = args.get(1).map(to_text).unwrap_or_default();
            Value::Array(
                to_text(&first)
                    .split(sep.as_str())
                    .map(|s| Value::String(s.into()))
                    .collect(),
            )
        }
        "truncate" => {
            let n = args.get(1).and_then(Value::as_f64).unwrap_or(0.0) as usize;
            Value::String(to_text(&first).chars().take(n).collect())
        }
        "pad" => Value::String(to_text(&first)),
        "println" => Value::String(args.iter().map(to_text).collect::<Vec<_>>().join(" ") + "\n"),
        "print" => Value::String(args.iter().map(to_text).collect::<Vec<_>>().join("")),
        _ => bail!("template: function {f:?} not defined"),
    })
}

/// How Go's template prints a value.
pub fn to_text(v: &Value) -> String {
    match v {
        Value::Null => "<no value>".into(),
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                i.to_string()
            } else if let Some(u) = n.as_u64() {
                u.to_string()
            } else {
                n.to_string()
            }
        }
        Value::Array(a) => format!("[{}]", a.iter().map(to_text).collect::<Vec<_>>().join(" ")),
        Value::Object(o) => format!(
            "map[{}]",
            o.iter()
                .map(|(k, v)| format!("{k}:{}", to_text(v)))
                .collect::<Vec<_>>()
                .join(" ")
        ),
    }
}

/// Prints `items` with `format` (a table with `headers` when it starts with `table`).
pub fn print_items(format: &str, items: &[Value], headers: &[(&str, &str)]) -> Result<()> {
    let t = Template::parse(format)?;
    let mut text = String::new();
    if t.table {
        text.push_str(&t.header(headers));
        text.push('\n');
    }
    for it in items {
        text.push_str(&t.render(it)?);
        text.push('\n');
    }
    if t.table {
        print!("{}", tabwrite(&text));
    } else {
        print!("{text}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn durations() {
        assert_eq!(human_duration(Duration::from_secs(0)), "Less than a second");
        assert_eq!(human_duration(Duration::from_secs(5)), "5 seconds");
        assert_eq!(human_duration(Duration::from_secs(90)), "About a minute");
        assert_eq!(human_duration(Duration::from_secs(3600)), "About an hour");
        assert_eq!(human_duration(Duration::from_secs(3 * 86400)), "3 days");
    }

    #[test]
    fn sizes() {
        assert_eq!(human_size(1982336.0), "1.98MB");
        assert_eq!(human_size(0.0), "0B");
        assert_eq!(human_size(123000.0), "123kB");
        assert_eq!(human_size(4096.0), "4.1kB");
        assert_eq!(human_size_4(4187.0), "4.187kB");
        assert_eq!(human_size_4(1200.0), "1.2kB");
        assert_eq!(human_size_4(0.0), "0B");
        assert_eq!(ram_in_bytes("64m").ok(), Some(67108864));
    }

    #[test]
    fn templates() {
        let v = json!({"ID": "abc", "State": {"Status": "running"}, "L": ["a", "b"]});
        let t = Template::parse("{{.ID}} {{.State.Status}} {{join .L \",\"}}").ok();
        assert_eq!(
            t.and_then(|t| t.render(&v).ok()).as_deref(),
            Some("abc running a,b")
        );
        let t = Template::parse("{{json .State}}").ok();
        assert_eq!(
            t.and_then(|t| t.render(&v).ok()).as_deref(),
            Some(r#"{"Status":"running"}"#)
        );
    }

    #[test]
    fn tables() {
        assert_eq!(
            tabwrite("CONTAINER ID\tIMAGE\tNAMES\nabc\tbb\tx\n"),
            "CONTAINER ID   IMAGE     NAMES\nabc            bb        x\n"
        );
    }
}
