//! `--mount`: one CSV line of `key=value` fields to a `HostConfig.Mounts` entry, with the keys,
//! defaults and errors of the docker CLI's `opts.MountOpt` (docker 28). The entry is built as
//! JSON, not as the API's typed `Mount`, so that a type or propagation the daemon does not know
//! reaches it and comes back with the daemon's own error, as with the docker CLI.

use anyhow::{anyhow, bail, Result};
use serde_json::{json, Map, Value};

use crate::fmt;

/// `--mount VALUE` as the API's JSON, or the docker CLI's error for it.
pub fn parse(value: &str) -> Result<Value> {
    parse_fields(value)
        .map_err(|e| anyhow!("invalid argument \"{value}\" for \"--mount\" flag: {e}"))
}

/// A Go `strconv.ParseBool`.
fn parse_bool(v: &str) -> Option<bool> {
    match v {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// The fields of one CSV record (Go's `encoding/csv`: quoted fields, `""` for a quote).
fn csv_fields(line: &str) -> Result<Vec<String>> {
    if line.is_empty() {
        bail!("EOF");
    }
    let mut fields = Vec::new();
    let mut chars = line.char_indices().peekable();
    loop {
        let mut field = String::new();
        if chars.peek().is_some_and(|(_, c)| *c == '"') {
            chars.next();
            loop {
                match chars.next() {
                    Some((_, '"')) if chars.peek().is_some_and(|(_, c)| *c == '"') => {
                        chars.next();
                        field.push('"');
                    }
                    Some((_, '"')) => break,
                    Some((_, c)) => field.push(c),
                    None => bail!(
                        "parse error on line 1, column {}: extraneous or missing \" in quoted-field",
                        line.len() + 1
                    ),
                }
            }
            match chars.next() {
                None => {
                    fields.push(field);
                    return Ok(fields);
                }
                Some((_, ',')) => fields.push(field),
                Some((i, _)) => bail!(
                    "parse error on line 1, column {}: extraneous or missing \" in quoted-field",
                    i + 1
                ),
            }
            continue;
        }
        loop {
            match chars.next() {
                None => {
                    fields.push(field);
                    return Ok(fields);
                }
                Some((_, ',')) => break,
                Some((i, '"')) => bail!(
                    "parse error on line 1, column {}: bare \" in non-quoted-field",
                    i + 1
                ),
                Some((_, c)) => field.push(c),
            }
        }
        fields.push(field);
    }
}

/// `BindOptions` as the docker CLI fills it.
#[derive(Default)]
struct BindOpts {
    propagation: String,
    non_recursive: bool,
    read_only_non_recursive: bool,
    read_only_force_recursive: bool,
}

/// `VolumeOptions` as the docker CLI fills it (its `DriverConfig` is always made).
#[derive(Default)]
struct VolumeOpts {
    no_copy: bool,
    labels: Map<String, Value>,
    subpath: String,
    driver: String,
    driver_opts: Map<String, Value>,
}

/// `TmpfsOptions`.
#[derive(Default)]
struct TmpfsOpts {
    size: i64,
    mode: u32,
}

/// docker's `setValueOnMap`: `K=V` (or `K` for an empty value) set on `m`, unless `K` is empty.
fn set_on_map(m: &mut Map<String, Value>, value: &str) {
    let (k, v) = value.split_once('=').unwrap_or((value, ""));
    if !k.is_empty() {
        m.insert(k.to_string(), json!(v));
    }
}

/// A JSON object of the members that are set (Go's `omitempty`: no false, 0, "" or {}).
fn omit_empty(members: Vec<(&str, Value)>) -> Value {
    let empty = |v: &Value| match v {
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_i64() == Some(0),
        Value::String(s) => s.is_empty(),
        Value::Object(o) => o.is_empty(),
        _ => false,
    };
    Value::Object(
        members
            .into_iter()
            .filter(|(_, v)| !empty(v))
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
    )
}

fn parse_fields(value: &str) -> Result<Value> {
    let fields = csv_fields(value)?;
    let mut typ = "volume".to_string();
    let (mut source, mut target, mut consistency) = (String::new(), String::new(), String::new());
    let mut read_only = false;
    // The option structs the docker CLI makes on first use.
    let mut bind: Option<BindOpts> = None;
    let mut volume: Option<VolumeOpts> = None;
    let mut tmpfs: Option<TmpfsOpts> = None;
    for field in &fields {
        let (key, val) = match field.split_once('=') {
            Some((k, v)) => (k.to_lowercase(), Some(v)),
            None => (field.to_lowercase(), None),
        };
        let Some(val) = val else {
            match key.as_str() {
                "readonly" | "ro" => read_only = true,
                "volume-nocopy" => volume.get_or_insert_with(Default::default).no_copy = true,
                "bind-nonrecursive" => {
                    bind.get_or_insert_with(Default::default).non_recursive = true
                }
                _ => bail!("invalid field '{field}' must be a key=value pair"),
            }
            continue;
        };
        let bad = || anyhow!("invalid value for {key}: {val}");
        match key.as_str() {
            "type" => typ = val.to_lowercase(),
            "source" | "src" => {
                source = val.to_string();
                if val == "." || val.starts_with("./") {
                    if let Ok(abs) = std::path::absolute(val) {
                        source = abs.display().to_string();
                    }
                }
            }
            "target" | "dst" | "destination" => target = val.to_string(),
            "readonly" | "ro" => read_only = parse_bool(val).ok_or_else(bad)?,
            "consistency" => consistency = val.to_lowercase(),
            "bind-propagation" => {
                bind.get_or_insert_with(Default::default).propagation = val.to_lowercase()
            }
            "bind-nonrecursive" => {
                bind.get_or_insert_with(Default::default).non_recursive =
                    parse_bool(val).ok_or_else(bad)?;
                eprintln!(
                    "WARNING: bind-nonrecursive is deprecated, use bind-recursive=disabled instead"
                );
            }
            "bind-recursive" => {
                let b = bind.get_or_insert_with(Default::default);
                match val {
                    "enabled" => {}
                    "disabled" => b.non_recursive = true,
                    "writable" => b.read_only_non_recursive = true,
                    "readonly" => b.read_only_force_recursive = true,
                    _ => bail!(
                        "invalid value for {key}: {val} (must be \"enabled\", \"disabled\", \"writable\", or \"readonly\")"
                    ),
                }
            }
            "volume-subpath" => {
                volume.get_or_insert_with(Default::default).subpath = val.to_string()
            }
            "volume-nocopy" => {
                volume.get_or_insert_with(Default::default).no_copy = parse_bool(val)
                    .ok_or_else(|| anyhow!("invalid value for volume-nocopy: {val}"))?
            }
            "volume-label" => {
                set_on_map(&mut volume.get_or_insert_with(Default::default).labels, val)
            }
            "volume-driver" => volume.get_or_insert_with(Default::default).driver = val.to_string(),
            "volume-opt" => set_on_map(
                &mut volume.get_or_insert_with(Default::default).driver_opts,
                val,
            ),
            "tmpfs-size" => {
                tmpfs.get_or_insert_with(Default::default).size =
                    fmt::ram_in_bytes(val).map_err(|_| bad())?
            }
            "tmpfs-mode" => {
                tmpfs.get_or_insert_with(Default::default).mode =
                    u32::from_str_radix(val, 8).map_err(|_| bad())?
            }
            _ => bail!("unexpected key '{key}' in '{field}'"),
        }
    }
    if typ.is_empty() {
        bail!("type is required");
    }
    if target.is_empty() {
        bail!("target is required");
    }
    for (set, kind) in [
        (volume.is_some(), "volume"),
        (bind.is_some(), "bind"),
        (tmpfs.is_some(), "tmpfs"),
    ] {
        if set && typ != kind {
            bail!("cannot mix '{kind}-*' options with mount type '{typ}'");
        }
    }
    if let Some(b) = &bind {
        if b.read_only_non_recursive && !read_only {
            bail!("option 'bind-recursive=writable' requires 'readonly' to be specified in conjunction");
        }
        if b.read_only_force_recursive {
            if !read_only {
                bail!("option 'bind-recursive=readonly' requires 'readonly' to be specified in conjunction");
            }
            if b.propagation != "rprivate" {
                bail!("option 'bind-recursive=readonly' requires 'bind-propagation=rprivate' to be specified in conjunction");
            }
        }
    }
    let mut members = vec![
        ("Type", json!(typ)),
        ("Source", json!(source)),
        ("Target", json!(target)),
        ("ReadOnly", json!(read_only)),
        ("Consistency", json!(consistency)),
    ];
    if let Some(b) = bind {
        let opts = omit_empty(vec![
            ("Propagation", json!(b.propagation)),
            ("NonRecursive", json!(b.non_recursive)),
            ("ReadOnlyNonRecursive", json!(b.read_only_non_recursive)),
            ("ReadOnlyForceRecursive", json!(b.read_only_force_recursive)),
        ]);
        members.push(("BindOptions", opts));
    }
    if let Some(v) = volume {
        let driver = omit_empty(vec![
            ("Name", json!(v.driver)),
            ("Options", Value::Object(v.driver_opts)),
        ]);
        let mut opts = omit_empty(vec![
            ("NoCopy", json!(v.no_copy)),
            ("Labels", Value::Object(v.labels)),
            ("Subpath", json!(v.subpath)),
        ]);
        opts["DriverConfig"] = driver;
        members.push(("VolumeOptions", opts));
    }
    if let Some(t) = tmpfs {
        let opts = omit_empty(vec![("SizeBytes", json!(t.size)), ("Mode", json!(t.mode))]);
        members.push(("TmpfsOptions", opts));
    }
    Ok(omit_empty(members))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(v: &str) -> String {
        let e = parse(v).unwrap_err().to_string();
        let prefix = format!("invalid argument \"{v}\" for \"--mount\" flag: ");
        e.strip_prefix(&prefix)
            .unwrap_or_else(|| panic!("{e}"))
            .to_string()
    }

    #[test]
    fn mounts_parse_as_the_docker_cli_does() {
        assert_eq!(
            parse(
                "type=bind,src=/h,dst=/c,readonly,bind-propagation=RSHARED,bind-recursive=disabled"
            )
            .unwrap(),
            json!({"Type": "bind", "Source": "/h", "Target": "/c", "ReadOnly": true,
                   "BindOptions": {"Propagation": "rshared", "NonRecursive": true}})
        );
        assert_eq!(
            parse("source=v,target=/x,volume-nocopy,volume-label=a=b,volume-opt=type=none,volume-subpath=s,ro=false")
                .unwrap(),
            json!({"Type": "volume", "Source": "v", "Target": "/x",
                   "VolumeOptions": {"NoCopy": true, "Labels": {"a": "b"}, "Subpath": "s",
                                     "DriverConfig": {"Options": {"type": "none"}}}})
        );
        assert_eq!(
            parse("type=tmpfs,destination=/t,tmpfs-size=1m,tmpfs-mode=1770").unwrap(),
            json!({"Type": "tmpfs", "Target": "/t",
                   "TmpfsOptions": {"SizeBytes": 1048576, "Mode": 0o1770}})
        );
        assert_eq!(
            parse("\"type=bind\",\"src=/a,b\",dst=/c").unwrap()["Source"],
            json!("/a,b")
        );
        // An unknown type goes to the daemon as given.
        assert_eq!(
            parse("type=Bogus,target=/x").unwrap()["Type"],
            json!("bogus")
        );
    }

    #[test]
    fn mount_errors_are_the_docker_clis() {
        assert_eq!(err("foo=bar"), "unexpected key 'foo' in 'foo=bar'");
        assert_eq!(err("src=v"), "target is required");
        assert_eq!(err(""), "EOF");
        assert_eq!(
            err("type=volume,target=/x,novalue"),
            "invalid field 'novalue' must be a key=value pair"
        );
        assert_eq!(
            err("readonly=maybe,target=/x"),
            "invalid value for readonly: maybe"
        );
        assert_eq!(
            err("type=bind,target=/x,volume-nocopy"),
            "cannot mix 'volume-*' options with mount type 'bind'"
        );
        assert_eq!(
            err("target=/x,bind-nonrecursive"),
            "cannot mix 'bind-*' options with mount type 'volume'"
        );
        assert_eq!(
            err("target=/x,tmpfs-size=1m"),
            "cannot mix 'tmpfs-*' options with mount type 'volume'"
        );
        assert_eq!(
            err("type=tmpfs,tmpfs-size=abc,target=/x"),
            "invalid value for tmpfs-size: abc"
        );
        assert_eq!(
            err("type=tmpfs,tmpfs-mode=9,target=/x"),
            "invalid value for tmpfs-mode: 9"
        );
        assert_eq!(
            err("target=/x,bind-recursive=foo"),
            "invalid value for bind-recursive: foo (must be \"enabled\", \"disabled\", \"writable\", or \"readonly\")"
        );
        assert_eq!(
            err("type=bind,target=/x,bind-recursive=writable"),
            "option 'bind-recursive=writable' requires 'readonly' to be specified in conjunction"
        );
        assert_eq!(
            err("type=bind,target=/x,bind-recursive=readonly,ro"),
            "option 'bind-recursive=readonly' requires 'bind-propagation=rprivate' to be specified in conjunction"
        );
        assert_eq!(
            err("target=/x,volume-nocopy=maybe"),
            "invalid value for volume-nocopy: maybe"
        );
        assert_eq!(err("type=,target=/x"), "type is required");
    }
}
