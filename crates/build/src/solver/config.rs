//! What each instruction does to the image config, and the history entry it leaves, in the
//! classic builder's terms (`/bin/sh -c #(nop)  ENV A=b`).

use serde_json::{json, Value};

use crate::instructions::{Healthcheck, ShellOrExec};
use crate::platform::Platform;

/// The shell of an image without `SHELL`.
pub const DEFAULT_SHELL: [&str; 2] = ["/bin/sh", "-c"];

/// The config of `scratch` for `platform`.
pub fn scratch(platform: &Platform) -> Value {
    let mut c = json!({
        "architecture": platform.architecture,
        "os": platform.os,
        "config": {
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
        },
        "rootfs": {"type": "layers", "diff_ids": []},
        "history": [],
    });
    if !platform.variant.is_empty() {
        c["variant"] = json!(platform.variant);
    }
    c
}

/// Sets `key` of the container config part (`config`) of an image config (made an object
/// first if it is not one).
pub fn set(image: &mut Value, key: &str, value: Value) {
    if !image.is_object() {
        *image = json!({});
    }
    if !image["config"].is_object() {
        image["config"] = json!({});
    }
    image["config"][key] = value;
}

/// A string list of the container config (`Env`, `Cmd`...), empty when unset.
pub fn strings(image: &Value, key: &str) -> Vec<String> {
    image["config"][key]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// The image's `Env` as pairs.
pub fn env_pairs(image: &Value) -> Vec<(String, String)> {
    strings(image, "Env")
        .into_iter()
        .map(|kv| match kv.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (kv, String::new()),
        })
        .collect()
}

/// Sets `key=value` in the image's `Env` (replacing an earlier value in place).
pub fn set_env(image: &mut Value, key: &str, value: &str) {
    let mut env = strings(image, "Env");
    let entry = format!("{key}={value}");
    match env
        .iter_mut()
        .find(|e| e.split_once('=').map_or(e.as_str(), |(k, _)| k) == key)
    {
        Some(e) => *e = entry,
        None => env.push(entry),
    }
    set(image, "Env", json!(env));
}

/// The image's shell (`SHELL`, else `/bin/sh -c`).
pub fn shell(image: &Value) -> Vec<String> {
    let s = strings(image, "Shell");
    if s.is_empty() {
        DEFAULT_SHELL.iter().map(|s| s.to_string()).collect()
    } else {
        s
    }
}

/// A command's argv: the shell form through the image's shell, the exec form as it is.
pub fn argv(image: &Value, cmd: &ShellOrExec) -> Vec<String> {
    match cmd {
        ShellOrExec::Shell(s) => {
            let mut v = shell(image);
            v.push(s.clone());
            v
        }
        ShellOrExec::Exec(v) => v.clone(),
    }
}

/// Go's `%q` of a string (the classic builder's history texts use it).
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Go's `%q` of a string slice: `["a" "b"]`.
pub fn go_quote_list(v: &[String]) -> String {
    let items: Vec<String> = v.iter().map(|s| go_quote(s)).collect();
    format!("[{}]", items.join(" "))
}

/// The history entry's `created_by` of a metadata step: the shell, `#(nop) ` and `comment`
/// (two spaces: the classic builder joins `#(nop) ` and the comment with one).
pub fn nop(image: &Value, comment: &str) -> String {
    format!("{} #(nop)  {comment}", shell(image).join(" "))
}

/// `created_by` of a step whose comment the classic builder glues to `#(nop) ` (COPY, ADD,
/// WORKDIR).
pub fn nop_glued(image: &Value, comment: &str) -> String {
    format!("{} #(nop) {comment}", shell(image).join(" "))
}

/// Sets the top-level `key` of an image config (made an object first if it is not one: a
/// base image's config comes from a registry, and writing into a non-object would panic).
pub fn set_top(image: &mut Value, key: &str, value: Value) {
    if !image.is_object() {
        *image = json!({});
    }
    if let Some(map) = image.as_object_mut() {
        map.insert(key.to_string(), value);
    }
}

/// Appends a history entry to `image`; `empty` when the step made no layer.
pub fn push_history(image: &mut Value, created: &str, created_by: &str, empty: bool) {
    let mut entry = json!({"created": created, "created_by": created_by});
    if empty {
        entry["empty_layer"] = json!(true);
    }
    if !image["history"].is_array() {
        set_top(image, "history", json!([]));
    }
    if let Some(h) = image["history"].as_array_mut() {
        h.push(entry);
    }
}

/// Marks the last history entry as a step that made no layer (an entry that is not an object,
/// from a foreign image, is left as it is).
pub fn mark_last_empty(image: &mut Value) {
    if let Some(last) = image["history"]
        .as_array_mut()
        .and_then(|h| h.last_mut())
        .and_then(Value::as_object_mut)
    {
        last.insert("empty_layer".to_string(), json!(true));
    }
}

/// `EXPOSE` ports as Docker keys them (`80/tcp`), ranges expanded.
pub fn exposed_ports(ports: &[String]) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for p in ports {
        let (range, proto) = match p.split_once('/') {
            Some((r, proto)) => (r, proto.to_ascii_lowercase()),
            None => (p.as_str(), "tcp".to_string()),
        };
        if !matches!(proto.as_str(), "tcp" | "udp" | "sctp") {
            return Err(format!("invalid proto: {proto}"));
        }
        let bad = || format!("invalid containerPort: {range}");
        let (start, end) = match range.split_once('-') {
            Some((a, b)) => (
                a.parse::<u16>().map_err(|_| bad())?,
                b.parse::<u16>().map_err(|_| bad())?,
            ),
            None => {
                let n = range.parse::<u16>().map_err(|_| bad())?;
                (n, n)
            }
        };
        if end < start {
            return Err(format!(
                "invalid range specified for containerPort: {range}"
            ));
        }
        for n in start..=end {
            out.push(format!("{n}/{proto}"));
        }
    }
    Ok(out)
}

/// Docker's `Healthcheck` object.
pub fn healthcheck(h: &Healthcheck) -> Value {
    match h {
        Healthcheck::None => json!({"Test": ["NONE"]}),
        Healthcheck::Cmd {
            test,
            interval,
            timeout,
            start_period,
            start_interval,
            retries,
        } => {
            let mut v = json!({ "Test": test });
            for (key, d) in [
                ("Interval", interval),
                ("Timeout", timeout),
                ("StartPeriod", start_period),
                ("StartInterval", start_interval),
            ] {
                if let Some(d) = d.filter(|d| !d.is_zero()) {
                    v[key] = json!(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
                }
            }
            if let Some(r) = retries.filter(|r| *r > 0) {
                v["Retries"] = json!(r);
            }
            v
        }
    }
}

/// WORKDIR `path` after `current`: an absolute path as it is, a relative one below `current`,
/// cleaned.
pub fn workdir(current: &str, path: &str) -> String {
    let joined = if path.starts_with('/') {
        path.to_string()
    } else {
        format!("/{current}/{path}")
    };
    crate::ignore::clean_path(&joined)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_expand_as_docker_keys_them() {
        let p = |v: &[&str]| exposed_ports(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(p(&["80"]).unwrap(), ["80/tcp"]);
        assert_eq!(
            p(&["53/UDP", "8000-8002"]).unwrap(),
            ["53/udp", "8000/tcp", "8001/tcp", "8002/tcp"]
        );
        assert!(p(&["x"]).is_err());
        assert!(p(&["80/xyz"]).is_err());
        assert!(p(&["9-1"]).is_err());
    }

    #[test]
    fn workdirs_chain_and_clean() {
        assert_eq!(workdir("", "app"), "/app");
        assert_eq!(workdir("/app", "src/../lib"), "/app/lib");
        assert_eq!(workdir("/app", "/abs/"), "/abs");
    }

    #[test]
    fn env_is_replaced_in_place() {
        let mut c = scratch(&Platform::default());
        set_env(&mut c, "A", "1");
        set_env(&mut c, "PATH", "/x");
        set_env(&mut c, "A", "2");
        assert_eq!(strings(&c, "Env"), ["PATH=/x", "A=2"]);
    }

    #[test]
    fn history_texts_are_the_classic_builders() {
        let c = scratch(&Platform::default());
        assert_eq!(nop(&c, "ENV A=b"), "/bin/sh -c #(nop)  ENV A=b");
        assert_eq!(
            go_quote_list(&["sh".into(), "-c".into(), "echo \"hi\"".into()]),
            r#"["sh" "-c" "echo \"hi\""]"#
        );
    }
}
