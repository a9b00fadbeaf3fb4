//! `RUN --mount=...` (BuildKit's `commands_runmount.go`).
//!
//! A spec is one CSV record of `key=value` fields (and the bare `ro`, `rw`,
//! `readonly`, `readwrite`, `required`). Values are expanded by the builder
//! (not the `from`, which must name a stage or image literally): a spec
//! with a `$` in a value is parsed with the value as written and
//! [`RunMount::needs_expansion`] set; the solver parses it again with
//! [`RunMount::parse_expanded`].

use crate::shell_words::ExpandError;

/// Errors of `--mount`, in BuildKit's words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MountError {
    #[error("failed to parse csv mounts: {0}")]
    Csv(String),
    #[error("invalid field '{0}' must be a key=value pair")]
    NotKeyValue(String),
    #[error("unexpected key '{0}' for mount type '{1}'")]
    KeyNotForType(String, String),
    #[error("unexpected key '{0}' in '{1}'")]
    UnknownKey(String, String),
    #[error("unsupported mount type {0:?}")]
    UnsupportedType(String),
    #[error("unsupported sharing value {0:?}")]
    UnsupportedSharing(String),
    #[error("invalid value for {0}: {1}")]
    InvalidValue(String, String),
    #[error("invalid value {0} for {1}")]
    InvalidNumber(String, String),
    #[error("'{0}' doesn't support variable expansion, define alias stage instead")]
    FromExpansion(String),
    #[error("{0} not allowed for {1:?} type mounts")]
    FileInfoNotAllowed(&'static str, String),
    #[error("secret mount should not have a from")]
    SecretFrom,
    #[error("secret mount should not define sharing")]
    SecretSharing,
    #[error("invalid secret mount. one of source, target required")]
    SecretNoTarget,
    #[error("both source and id can't be set")]
    SecretSourceAndId,
    #[error("invalid cache sharing set for {0} mount")]
    SharingNotCache(String),
    #[error(transparent)]
    Expand(#[from] ExpandError),
}

/// `type=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MountType {
    Bind,
    Cache,
    Tmpfs,
    Secret,
    Ssh,
}

impl MountType {
    pub fn as_str(self) -> &'static str {
        match self {
            MountType::Bind => "bind",
            MountType::Cache => "cache",
            MountType::Tmpfs => "tmpfs",
            MountType::Secret => "secret",
            MountType::Ssh => "ssh",
        }
    }
}

/// `sharing=` of cache mounts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sharing {
    Shared,
    Private,
    Locked,
}

/// One `--mount`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunMount {
    pub mount_type: MountType,
    /// `from=`: a stage or image to take the source from.
    pub from: Option<String>,
    /// `source=`/`src=`.
    pub source: Option<String>,
    /// `target=`/`dst=`/`destination=`.
    pub target: Option<String>,
    /// `ro`/`readonly`/`rw`; defaults to read-only except cache and tmpfs.
    pub readonly: bool,
    /// `id=` (cache id, secret id, ssh id).
    pub id: Option<String>,
    pub sharing: Option<Sharing>,
    /// `required` (secret, ssh).
    pub required: bool,
    /// `env=` (secret exposed as an environment variable).
    pub env: Option<String>,
    /// `mode=` (octal), `uid=`, `gid=` (secret, ssh, cache).
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    /// `size=` of tmpfs, bytes.
    pub size: Option<u64>,
    /// The spec as written.
    pub spec: String,
    /// A value refers to a variable: parse again with expansion.
    pub needs_expansion: bool,
}

type Expander<'a> = &'a mut dyn FnMut(&str) -> Result<String, ExpandError>;

impl RunMount {
    /// Parses a spec without expanding variables (values kept as written;
    /// values with a `$` are not validated and set `needs_expansion`).
    pub fn parse(spec: &str) -> Result<RunMount, MountError> {
        parse_mount(spec, None)
    }

    /// Parses a spec, expanding each value (not the keys, not `from`).
    pub fn parse_expanded(
        spec: &str,
        expand: &mut dyn FnMut(&str) -> Result<String, ExpandError>,
    ) -> Result<RunMount, MountError> {
        parse_mount(spec, Some(expand))
    }
}

/// One CSV record as Go's `encoding/csv` reads it (`,` separator, `"`
/// quoting with `""` for a quote).
fn csv_fields(s: &str) -> Result<Vec<String>, MountError> {
    let mut fields = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        let mut field = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next() {
                    None => {
                        return Err(MountError::Csv(
                            "extraneous or missing \" in quoted-field".into(),
                        ))
                    }
                    Some('"') if chars.peek() == Some(&'"') => {
                        chars.next();
                        field.push('"');
                    }
                    Some('"') => break,
                    Some(c) => field.push(c),
                }
            }
            match chars.next() {
                None => {
                    fields.push(field);
                    return Ok(fields);
                }
                Some(',') => fields.push(field),
                Some(_) => {
                    return Err(MountError::Csv(
                        "extraneous or missing \" in quoted-field".into(),
                    ))
                }
            }
        } else {
            loop {
                match chars.next() {
                    None => {
                        fields.push(field);
                        return Ok(fields);
                    }
                    Some(',') => break,
                    Some('"') => return Err(MountError::Csv("bare \" in non-quoted-field".into())),
                    Some(c) => field.push(c),
                }
            }
            fields.push(field);
        }
    }
}

fn parse_bool(key: &str, v: &str) -> Result<bool, MountError> {
    // strconv.ParseBool
    match v {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(false),
        _ => Err(MountError::InvalidValue(key.to_string(), v.to_string())),
    }
}

fn parse_mount(spec: &str, mut expander: Option<Expander<'_>>) -> Result<RunMount, MountError> {
    let mut m = RunMount {
        mount_type: MountType::Bind,
        from: None,
        source: None,
        target: None,
        readonly: false,
        id: None,
        sharing: None,
        required: false,
        env: None,
        mode: None,
        uid: None,
        gid: None,
        size: None,
        spec: spec.to_string(),
        needs_expansion: false,
    };
    let mut ro_auto = true;
    for field in csv_fields(spec)? {
        let Some((key, value)) = field.split_once('=') else {
            match field.to_ascii_lowercase().as_str() {
                "readonly" | "ro" => {
                    m.readonly = true;
                    ro_auto = false;
                }
                "readwrite" | "rw" => {
                    m.readonly = false;
                    ro_auto = false;
                }
                "required" => {
                    if !matches!(m.mount_type, MountType::Secret | MountType::Ssh) {
                        return Err(MountError::KeyNotForType(
                            "required".into(),
                            m.mount_type.as_str().into(),
                        ));
                    }
                    m.required = true;
                }
                _ => return Err(MountError::NotKeyValue(field.clone())),
            }
            continue;
        };
        let key = key.to_ascii_lowercase();
        let value = if key == "from" {
            if has_variable(value) {
                return Err(MountError::FromExpansion(key));
            }
            value.to_string()
        } else if let Some(expand) = expander.as_mut() {
            expand(value)?
        } else {
            if has_variable(value) {
                m.needs_expansion = true;
            }
            value.to_string()
        };
        // Typed values holding a variable are checked after expansion.
        let deferred = expander.is_none() && has_variable(&value);
        match key.as_str() {
            "type" => {
                if deferred {
                    continue;
                }
                m.mount_type = match value.to_ascii_lowercase().as_str() {
                    "bind" => MountType::Bind,
                    "cache" => MountType::Cache,
                    "tmpfs" => MountType::Tmpfs,
                    "secret" => MountType::Secret,
                    "ssh" => MountType::Ssh,
                    _ => return Err(MountError::UnsupportedType(value)),
                };
            }
            "from" => m.from = Some(value),
            "source" | "src" => m.source = Some(value),
            "target" | "dst" | "destination" => m.target = Some(value),
            "readonly" | "ro" | "readwrite" | "rw" => {
                ro_auto = false;
                if deferred {
                    continue;
                }
                let b = parse_bool(&key, &value)?;
                m.readonly = if key == "ro" || key == "readonly" {
                    b
                } else {
                    !b
                };
            }
            "required" => {
                if !matches!(m.mount_type, MountType::Secret | MountType::Ssh) {
                    return Err(MountError::KeyNotForType(key, m.mount_type.as_str().into()));
                }
                if !deferred {
                    m.required = parse_bool(&key, &value)?;
                }
            }
            "size" => {
                if m.mount_type != MountType::Tmpfs {
                    return Err(MountError::KeyNotForType(key, m.mount_type.as_str().into()));
                }
                if !deferred {
                    m.size =
                        Some(ram_in_bytes(&value).ok_or(MountError::InvalidValue(key, value))?);
                }
            }
            "id" => m.id = Some(value),
            "env" => m.env = Some(value),
            "sharing" => {
                if deferred {
                    continue;
                }
                m.sharing = Some(match value.to_ascii_lowercase().as_str() {
                    "shared" => Sharing::Shared,
                    "private" => Sharing::Private,
                    "locked" => Sharing::Locked,
                    _ => return Err(MountError::UnsupportedSharing(value)),
                });
            }
            "mode" | "uid" | "gid" => {
                if deferred {
                    continue;
                }
                let radix = if key == "mode" { 8 } else { 10 };
                let n = u32::from_str_radix(&value, radix)
                    .ok()
                    .filter(|_| !value.starts_with('+'))
                    .ok_or_else(|| MountError::InvalidNumber(value.clone(), key.clone()))?;
                match key.as_str() {
                    "mode" => m.mode = Some(n),
                    "uid" => m.uid = Some(n),
                    _ => m.gid = Some(n),
                }
            }
            _ => return Err(MountError::UnknownKey(key, field.clone())),
        }
    }
    validate(&mut m, ro_auto)?;
    Ok(m)
}

/// A `$` followed by something (BuildKit's `\$.`).
fn has_variable(v: &str) -> bool {
    v.find('$').is_some_and(|i| v.len() > i + 1)
}

fn validate(m: &mut RunMount, ro_auto: bool) -> Result<(), MountError> {
    let t = m.mount_type;
    if !matches!(t, MountType::Secret | MountType::Ssh | MountType::Cache) {
        for (name, set) in [
            ("mode", m.mode.is_some()),
            ("uid", m.uid.is_some()),
            ("gid", m.gid.is_some()),
        ] {
            if set {
                return Err(MountError::FileInfoNotAllowed(name, t.as_str().into()));
            }
        }
    }
    if ro_auto {
        m.readonly = !matches!(t, MountType::Cache | MountType::Tmpfs);
    }
    if t == MountType::Secret {
        if m.from.is_some() {
            return Err(MountError::SecretFrom);
        }
        if m.sharing.is_some() {
            return Err(MountError::SecretSharing);
        }
        if m.source.is_none() && m.target.is_none() && m.id.is_none() && m.env.is_none() {
            return Err(MountError::SecretNoTarget);
        }
        if m.source.is_some() && m.id.is_some() {
            return Err(MountError::SecretSourceAndId);
        }
    }
    if m.sharing.is_some() && t != MountType::Cache {
        return Err(MountError::SharingNotCache(t.as_str().into()));
    }
    Ok(())
}

/// go-units `RAMInBytes`: `64m`, `1.5GiB`, `1024` (binary multiples).
pub fn ram_in_bytes(s: &str) -> Option<u64> {
    let num_end = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(num_end);
    if num.is_empty() || num.starts_with('.') || num.ends_with('.') {
        return None;
    }
    let value: f64 = num.parse().ok()?;
    let unit = unit.strip_prefix(' ').unwrap_or(unit).to_ascii_lowercase();
    let unit = unit.strip_suffix('b').unwrap_or(&unit);
    let unit = unit.strip_suffix('i').unwrap_or(unit);
    let mult: u64 = match unit {
        "" => 1,
        "k" => 1 << 10,
        "m" => 1 << 20,
        "g" => 1 << 30,
        "t" => 1 << 40,
        "p" => 1 << 50,
        _ => return None,
    };
    let bytes = value * mult as f64;
    (bytes.is_finite() && bytes < u64::MAX as f64).then_some(bytes as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> RunMount {
        RunMount::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn e(s: &str) -> String {
        RunMount::parse(s).unwrap_err().to_string()
    }

    #[test]
    fn defaults_are_bind_readonly() {
        let m = p("target=/src");
        assert_eq!(m.mount_type, MountType::Bind);
        assert!(m.readonly);
        assert_eq!(m.target.as_deref(), Some("/src"));
        assert!(!p("target=/src,rw").readonly);
        assert!(!p("target=/src,readwrite=true").readonly);
        assert!(p("target=/src,readonly=1").readonly);
    }

    #[test]
    fn cache_mount() {
        let m = p("type=cache,target=/root/.cache,id=go,sharing=locked,mode=0755,uid=1000,gid=1000,from=base,source=/c");
        assert_eq!(m.mount_type, MountType::Cache);
        assert!(!m.readonly);
        assert_eq!(m.id.as_deref(), Some("go"));
        assert_eq!(m.sharing, Some(Sharing::Locked));
        assert_eq!(
            (m.mode, m.uid, m.gid),
            (Some(0o755), Some(1000), Some(1000))
        );
        assert_eq!(m.from.as_deref(), Some("base"));
        assert_eq!(m.source.as_deref(), Some("/c"));
    }

    #[test]
    fn key_aliases_and_case() {
        assert_eq!(p("Type=TMPFS,DST=/t,size=64m").size, Some(64 << 20));
        assert_eq!(
            p("type=bind,destination=/d,src=x").source.as_deref(),
            Some("x")
        );
    }

    #[test]
    fn secret_and_ssh() {
        let m = p("type=secret,id=aws,target=/root/.aws/credentials,required");
        assert!(m.required && m.readonly);
        assert_eq!(
            p("type=secret,id=tok,env=TOKEN").env.as_deref(),
            Some("TOKEN")
        );
        let m = p("type=ssh,required=true");
        assert!(m.required);
        assert_eq!(
            e("type=secret"),
            "invalid secret mount. one of source, target required"
        );
        assert_eq!(
            e("type=secret,id=a,source=b"),
            "both source and id can't be set"
        );
        assert_eq!(
            e("type=secret,id=a,from=x"),
            "secret mount should not have a from"
        );
        assert_eq!(
            e("type=secret,id=a,sharing=shared"),
            "secret mount should not define sharing"
        );
        assert_eq!(
            e("required,type=secret,id=a"),
            "unexpected key 'required' for mount type 'bind'"
        );
    }

    #[test]
    fn errors() {
        assert_eq!(e("type=nfs"), "unsupported mount type \"nfs\"");
        assert_eq!(
            e("type=cache,sharing=weird"),
            "unsupported sharing value \"weird\""
        );
        assert_eq!(
            e("type=bind,sharing=shared"),
            "invalid cache sharing set for bind mount"
        );
        assert_eq!(
            e("target=/x,mode=0755"),
            "mode not allowed for \"bind\" type mounts"
        );
        assert_eq!(e("type=cache,mode=9"), "invalid value 9 for mode");
        assert_eq!(e("type=cache,uid=-1"), "invalid value -1 for uid");
        assert_eq!(e("type=tmpfs,size=lots"), "invalid value for size: lots");
        assert_eq!(
            e("type=bind,size=1m"),
            "unexpected key 'size' for mount type 'bind'"
        );
        assert_eq!(
            e("target=/x,bogus=1"),
            "unexpected key 'bogus' in 'bogus=1'"
        );
        assert_eq!(
            e("target"),
            "invalid field 'target' must be a key=value pair"
        );
        assert_eq!(e("target=/x,ro=maybe"), "invalid value for ro: maybe");
        assert_eq!(
            e("from=$STAGE"),
            "'from' doesn't support variable expansion, define alias stage instead"
        );
        assert_eq!(
            e("target=a\"b"),
            "failed to parse csv mounts: bare \" in non-quoted-field"
        );
    }

    #[test]
    fn csv_quoting() {
        let m = p("\"target=/a,b\",type=cache");
        assert_eq!(m.target.as_deref(), Some("/a,b"));
        assert_eq!(csv_fields("\"a\"\"b\",c").unwrap(), ["a\"b", "c"]);
        assert!(csv_fields("\"a\"x").is_err());
    }

    #[test]
    fn variables_are_deferred_then_expanded() {
        let m = p("type=cache,target=$DIR,uid=$UID");
        assert!(m.needs_expansion);
        assert_eq!(m.target.as_deref(), Some("$DIR"));
        assert_eq!(m.uid, None);
        let mut expand = |w: &str| -> Result<String, ExpandError> {
            Ok(w.replace("$DIR", "/cache").replace("$UID", "42"))
        };
        let m = RunMount::parse_expanded(&m.spec, &mut expand).unwrap();
        assert_eq!((m.target.as_deref(), m.uid), (Some("/cache"), Some(42)));
        assert!(!m.needs_expansion);
    }

    #[test]
    fn sizes() {
        assert_eq!(ram_in_bytes("1024"), Some(1024));
        assert_eq!(ram_in_bytes("1k"), Some(1024));
        assert_eq!(ram_in_bytes("1.5GiB"), Some(3 << 29));
        assert_eq!(ram_in_bytes("2 mb"), Some(2 << 20));
        assert_eq!(ram_in_bytes("x"), None);
        assert_eq!(ram_in_bytes("1x"), None);
        assert_eq!(ram_in_bytes(""), None);
    }
}
