//! `--name[=value]` flags of one instruction (BuildKit's `BFlags`).

use std::collections::BTreeMap;

/// Errors of flag parsing, in BuildKit's words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FlagError {
    #[error("Arg should start with -- : {0}")]
    NotAFlag(String),
    #[error("Unknown flag: {0}")]
    Unknown(String),
    #[error("Duplicate flag specified: {0}")]
    Duplicate(String),
    #[error("Missing a value on flag: {0}")]
    MissingValue(String),
    #[error("Expecting boolean value for flag {0}, not: {1}")]
    NotBool(String, String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Bool,
    String,
    /// May repeat; every value is kept.
    Strings,
}

/// Parsed flags: only the names declared are accepted.
#[derive(Debug, Default)]
pub(super) struct Flags {
    values: BTreeMap<String, Vec<String>>,
}

impl Flags {
    /// Parses `args` (`--a=1`, `--b`) against the declared `(name, kind)`s.
    /// Parsing stops at a bare `--`.
    pub(super) fn parse(args: &[String], declared: &[(&str, Kind)]) -> Result<Flags, FlagError> {
        let mut values: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for arg in args {
            let Some(body) = arg.strip_prefix("--") else {
                return Err(FlagError::NotAFlag(arg.clone()));
            };
            if body.is_empty() {
                break;
            }
            let (name, value) = match body.split_once('=') {
                Some((n, v)) => (n, Some(v)),
                None => (body, None),
            };
            let Some(&(_, kind)) = declared.iter().find(|(n, _)| *n == name) else {
                return Err(FlagError::Unknown(name.to_string()));
            };
            let slot = values.entry(name.to_string()).or_default();
            if !slot.is_empty() && kind != Kind::Strings {
                return Err(FlagError::Duplicate(name.to_string()));
            }
            let v = match (kind, value) {
                (Kind::Bool, Some("")) => return Err(FlagError::MissingValue(name.to_string())),
                (Kind::Bool, None) => "true".to_string(),
                (Kind::Bool, Some(v)) => match v.to_ascii_lowercase().as_str() {
                    l @ ("true" | "false") => l.to_string(),
                    _ => return Err(FlagError::NotBool(name.to_string(), v.to_string())),
                },
                (_, None) => return Err(FlagError::MissingValue(name.to_string())),
                (_, Some(v)) => v.to_string(),
            };
            slot.push(v);
        }
        Ok(Flags { values })
    }

    /// The value of a string flag, if given.
    pub(super) fn string(&self, name: &str) -> Option<String> {
        self.values.get(name).and_then(|v| v.last()).cloned()
    }

    /// A bool flag (false if absent).
    pub(super) fn bool(&self, name: &str) -> bool {
        self.string(name).as_deref() == Some("true")
    }

    /// All values of a repeatable flag.
    pub(super) fn strings(&self, name: &str) -> Vec<String> {
        self.values.get(name).cloned().unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DECL: &[(&str, Kind)] = &[
        ("link", Kind::Bool),
        ("from", Kind::String),
        ("exclude", Kind::Strings),
    ];

    fn p(args: &[&str]) -> Result<Flags, FlagError> {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        Flags::parse(&args, DECL)
    }

    #[test]
    fn kinds() {
        let f = p(&["--link", "--from=a", "--exclude=x", "--exclude=y"]).unwrap();
        assert!(f.bool("link"));
        assert_eq!(f.string("from").as_deref(), Some("a"));
        assert_eq!(f.strings("exclude"), ["x", "y"]);
        assert!(!p(&["--link=FALSE"]).unwrap().bool("link"));
        assert_eq!(p(&[]).unwrap().string("from"), None);
    }

    #[test]
    fn errors() {
        assert_eq!(
            p(&["--nope=1"]).unwrap_err().to_string(),
            "Unknown flag: nope"
        );
        assert_eq!(
            p(&["--from=a", "--from=b"]).unwrap_err().to_string(),
            "Duplicate flag specified: from"
        );
        assert_eq!(
            p(&["--from"]).unwrap_err().to_string(),
            "Missing a value on flag: from"
        );
        assert_eq!(
            p(&["--link="]).unwrap_err().to_string(),
            "Missing a value on flag: link"
        );
        assert_eq!(
            p(&["--link=yes"]).unwrap_err().to_string(),
            "Expecting boolean value for flag link, not: yes"
        );
        assert_eq!(
            p(&["x"]).unwrap_err().to_string(),
            "Arg should start with -- : x"
        );
        assert!(p(&["--", "--nope"]).is_ok());
    }
}
