//! The log drivers: the names accepted, their options checked as dockerd checks them, the
//! daemon's default (`log-driver`, `log-opts`) merged into a container's at create, and what
//! the monitor is told to write. `json-file`, `local` and `none` are what they are in dockerd;
//! the other names dockerd has built in are accepted and written as json-file. Berth adds
//! `cri` (the CRI's containers): kubelet's format, to the file its `path` option names.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::container::spec::{HostSpec, LogConfig};

pub const JSON_FILE: &str = "json-file";
pub const LOCAL: &str = "local";
pub const NONE: &str = "none";
/// The CRI's log format, to the absolute path of its one option, [`CRI_PATH`].
pub const CRI: &str = "cri";
pub const CRI_PATH: &str = "path";

/// dockerd's built-in drivers: a name outside them is refused, as dockerd refuses it.
pub const ACCEPTED: &[&str] = &[
    "json-file",
    "local",
    "none",
    "syslog",
    "journald",
    "gelf",
    "fluentd",
    "awslogs",
    "splunk",
    "etwlogs",
    "gcplogs",
    "logentries",
];

/// `/info`'s `Plugins.Log`: as dockerd lists its registered drivers (sorted; `none` is not a
/// driver there, and `etwlogs` is Windows').
pub fn plugins() -> Vec<&'static str> {
    let mut names: Vec<&str> = ACCEPTED
        .iter()
        .copied()
        .filter(|n| !matches!(*n, NONE | "etwlogs"))
        .collect();
    names.sort_unstable();
    names
}

/// The options every driver takes (dockerd's `builtInLogOpts`).
const BUILT_IN_OPTS: &[&str] = &["mode", "max-buffer-size"];

/// The options of `local` (dockerd's `LogOptKeys`).
const LOCAL_OPTS: &[&str] = &[
    "max-file",
    "max-size",
    "compress",
    "labels",
    "labels-regex",
    "env",
    "env-regex",
    "tag",
];

/// `local`'s defaults: 20 MiB files, 5 of them, the rotated ones compressed.
pub const LOCAL_MAX_SIZE: u64 = 20 << 20;
pub const LOCAL_MAX_FILE: u32 = 5;

/// A driver or option dockerd would refuse, in dockerd's words.
#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    #[error("logger: no log driver named '{0}' is registered")]
    Unknown(String),
    #[error("logger: logging mode not supported: {0}")]
    Mode(String),
    #[error("logger: max-buffer-size option is only supported with 'mode=non-blocking'")]
    BufferWithoutNonBlocking,
    #[error("error parsing option max-buffer-size: invalid size: '{0}'")]
    BufferSize(String),
    #[error("unknown log opt '{key}' for log driver {driver}")]
    UnknownOpt { key: String, driver: &'static str },
    #[error("invalid value for max-size: {0}: invalid size: '{0}'")]
    MaxSize(String),
    #[error("invalid value for max-file: {0}: strconv.Atoi: parsing \"{0}\": invalid syntax")]
    MaxFile(String),
    #[error(
        "invalid boolean value for compress: strconv.ParseBool: parsing \"{0}\": invalid syntax"
    )]
    Compress(String),
    #[error("max-file must not be negative")]
    NegativeMaxFile,
    #[error("compression cannot be enabled when max file count is 1")]
    CompressOneFile,
    #[error("the cri log driver needs an absolute 'path' option")]
    CriPath,
}

/// The daemon's default log configuration (`--log-driver`, `--log-opt`; daemon.json
/// `log-driver`, `log-opts`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DefaultLog {
    pub driver: String,
    pub opts: HashMap<String, String>,
}

impl Default for DefaultLog {
    fn default() -> DefaultLog {
        DefaultLog {
            driver: JSON_FILE.to_string(),
            opts: HashMap::new(),
        }
    }
}

/// The driver a container's host config names (json-file when it names none: the records of
/// containers made before drivers were kept).
pub fn driver_of(hc: &HostSpec) -> &str {
    hc.log_config
        .as_ref()
        .and_then(|l| l.typ.as_deref())
        .filter(|t| !t.is_empty())
        .unwrap_or(JSON_FILE)
}

/// Checks a driver and its options as dockerd's `ValidateLogOpts` does (and, for `local`, the
/// values its driver would refuse when the container starts).
pub fn check(driver: &str, opts: &HashMap<String, String>) -> Result<(), DriverError> {
    if driver == NONE {
        return Ok(());
    }
    let mode = opts.get("mode").map_or("", String::as_str);
    if !matches!(mode, "" | "blocking" | "non-blocking") {
        return Err(DriverError::Mode(mode.to_string()));
    }
    if let Some(size) = opts.get("max-buffer-size") {
        if mode != "non-blocking" {
            return Err(DriverError::BufferWithoutNonBlocking);
        }
        if crate::lifecycle::parse_size(size).is_none() {
            return Err(DriverError::BufferSize(size.clone()));
        }
    }
    if driver == CRI {
        if let Some(key) = opts.keys().find(|k| *k != CRI_PATH) {
            return Err(DriverError::UnknownOpt {
                key: key.clone(),
                driver: CRI,
            });
        }
        if !opts.get(CRI_PATH).is_some_and(|p| p.starts_with('/')) {
            return Err(DriverError::CriPath);
        }
        return Ok(());
    }
    if !ACCEPTED.contains(&driver) {
        return Err(DriverError::Unknown(driver.to_string()));
    }
    if driver == LOCAL {
        let mut keys: Vec<&String> = opts.keys().collect();
        keys.sort();
        if let Some(key) = keys
            .into_iter()
            .find(|k| !BUILT_IN_OPTS.contains(&k.as_str()) && !LOCAL_OPTS.contains(&k.as_str()))
        {
            return Err(DriverError::UnknownOpt {
                key: key.clone(),
                driver: LOCAL,
            });
        }
        local_settings(opts)?;
    }
    Ok(())
}

/// Checks the driver and options of a create body, before the daemon's default is merged in
/// (an empty driver is the default's, checked when the daemon started).
pub fn check_create(hc: &HostSpec) -> Result<(), DriverError> {
    let Some(log) = &hc.log_config else {
        return Ok(());
    };
    let driver = log.typ.as_deref().unwrap_or("");
    if driver.is_empty() {
        return Ok(());
    }
    check(driver, &log.config.clone().unwrap_or_default())
}

/// dockerd's `mergeAndVerifyLogConfig`: a container that names no driver gets the default,
/// and one with the default's driver gets the default's options it does not set itself. The
/// result is checked, since the default's options now apply to it.
pub fn merge_default(hc: &mut HostSpec, default: &DefaultLog) -> Result<(), DriverError> {
    let log = hc.log_config.get_or_insert_with(LogConfig::default);
    if log.typ.as_deref().unwrap_or("").is_empty() {
        log.typ = Some(default.driver.clone());
    }
    let config = log.config.get_or_insert_with(HashMap::new);
    if log.typ.as_deref() == Some(default.driver.as_str()) {
        for (k, v) in &default.opts {
            config.entry(k.clone()).or_insert_with(|| v.clone());
        }
    }
    check(log.typ.as_deref().unwrap_or(""), config)
}

/// `local`'s file rotation and compression.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalSettings {
    pub max_size: u64,
    pub max_file: u32,
    pub compress: bool,
}

/// `local`'s options read as its driver reads them (`max-size` in decimal units, as go-units'
/// `FromHumanSize`), with its defaults.
pub fn local_settings(opts: &HashMap<String, String>) -> Result<LocalSettings, DriverError> {
    let mut s = LocalSettings {
        max_size: LOCAL_MAX_SIZE,
        max_file: LOCAL_MAX_FILE,
        compress: true,
    };
    if let Some(v) = opts.get("max-size") {
        s.max_size = human_size(v).ok_or_else(|| DriverError::MaxSize(v.clone()))?;
    }
    if let Some(v) = opts.get("max-file") {
        let n: i64 = v.parse().map_err(|_| DriverError::MaxFile(v.clone()))?;
        if n < 0 {
            return Err(DriverError::NegativeMaxFile);
        }
        s.max_file = u32::try_from(n).unwrap_or(u32::MAX);
    }
    if let Some(v) = opts.get("compress") {
        s.compress = match v.as_str() {
            "1" | "t" | "T" | "TRUE" | "true" | "True" => true,
            "0" | "f" | "F" | "FALSE" | "false" | "False" => false,
            _ => return Err(DriverError::Compress(v.clone())),
        };
    }
    if s.compress && s.max_file <= 1 {
        return Err(DriverError::CompressOneFile);
    }
    Ok(s)
}

/// go-units' `FromHumanSize`: a decimal number with an optional unit `k`, `m`, `g`, `t`, `p`
/// (powers of 1000, any case, then an optional `i` and `b`), a space allowed before it.
fn human_size(s: &str) -> Option<u64> {
    let end = s
        .char_indices()
        .find(|(_, c)| !(c.is_ascii_digit() || *c == '.'))
        .map_or(s.len(), |(i, _)| i);
    let (num, unit) = s.split_at(end);
    if num.is_empty() || num.starts_with('.') || num.ends_with('.') || num.contains("..") {
        return None;
    }
    let value: f64 = num.parse().ok()?;
    let unit = unit.strip_prefix(' ').unwrap_or(unit).to_ascii_lowercase();
    let unit = unit.strip_suffix('b').unwrap_or(&unit);
    let unit = unit.strip_suffix('i').unwrap_or(unit);
    let mult: f64 = match unit {
        "" => 1.0,
        "k" => 1e3,
        "m" => 1e6,
        "g" => 1e9,
        "t" => 1e12,
        "p" => 1e15,
        _ => return None,
    };
    let bytes = value * mult;
    (bytes.is_finite() && bytes < u64::MAX as f64).then_some(bytes as u64)
}

/// Where a `local` log lives in a container's directory (as dockerd's
/// `local-logs/container.log`).
pub fn local_path(data_dir: &Path) -> PathBuf {
    data_dir.join("local-logs").join("container.log")
}

/// What the monitor of a container writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// `json-file`, `local`, `none` or `cri` (the monitor's `--log-driver`).
    pub driver: &'static str,
    pub path: PathBuf,
    pub max_size: Option<u64>,
    pub max_file: Option<u32>,
    pub compress: bool,
}

/// The monitor's log for a container of `hc` whose json-file log is `json_log` and whose
/// directory is `data_dir`.
pub fn plan(hc: &HostSpec, json_log: &Path, data_dir: &Path) -> Plan {
    let opts = hc
        .log_config
        .as_ref()
        .and_then(|l| l.config.clone())
        .unwrap_or_default();
    match driver_of(hc) {
        NONE => Plan {
            driver: NONE,
            path: json_log.to_path_buf(),
            max_size: None,
            max_file: None,
            compress: false,
        },
        CRI => Plan {
            driver: CRI,
            path: opts
                .get(CRI_PATH)
                .map_or_else(|| json_log.to_path_buf(), PathBuf::from),
            max_size: None,
            max_file: None,
            compress: false,
        },
        LOCAL => {
            // Checked at create; a record from before then gets the defaults.
            let s = local_settings(&opts).unwrap_or(LocalSettings {
                max_size: LOCAL_MAX_SIZE,
                max_file: LOCAL_MAX_FILE,
                compress: true,
            });
            Plan {
                driver: LOCAL,
                path: local_path(data_dir),
                max_size: Some(s.max_size),
                max_file: Some(s.max_file.max(1)),
                compress: s.compress,
            }
        }
        _ => Plan {
            driver: JSON_FILE,
            path: json_log.to_path_buf(),
            max_size: opts
                .get("max-size")
                .and_then(|s| crate::lifecycle::parse_size(s)),
            max_file: opts.get("max-file").and_then(|s| s.parse().ok()),
            compress: false,
        },
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn opts(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn the_cri_driver_needs_an_absolute_path() {
        assert!(check(CRI, &opts(&[("path", "/var/log/pods/p/c/0.log")])).is_ok());
        assert!(matches!(check(CRI, &opts(&[])), Err(DriverError::CriPath)));
        assert!(matches!(
            check(CRI, &opts(&[("path", "rel.log")])),
            Err(DriverError::CriPath)
        ));
        assert!(matches!(
            check(CRI, &opts(&[("path", "/x"), ("max-size", "1m")])),
            Err(DriverError::UnknownOpt { .. })
        ));
        let hc = HostSpec {
            log_config: Some(LogConfig {
                typ: Some(CRI.into()),
                config: Some(opts(&[("path", "/var/log/pods/x/0.log")])),
            }),
            ..Default::default()
        };
        let p = plan(&hc, Path::new("/j.log"), Path::new("/d"));
        assert_eq!(p.driver, CRI);
        assert_eq!(p.path, Path::new("/var/log/pods/x/0.log"));
        assert_eq!(p.max_size, None);
        assert!(!plugins().contains(&CRI));
    }

    #[test]
    fn local_options_as_dockerd_checks_them() {
        assert!(check(LOCAL, &opts(&[])).is_ok());
        assert!(check(LOCAL, &opts(&[("max-size", "1k"), ("max-file", "3")])).is_ok());
        let msg = |o: &[(&str, &str)]| check(LOCAL, &opts(o)).unwrap_err().to_string();
        assert_eq!(
            msg(&[("foo", "1")]),
            "unknown log opt 'foo' for log driver local"
        );
        assert_eq!(
            msg(&[("max-size", "x")]),
            "invalid value for max-size: x: invalid size: 'x'"
        );
        assert_eq!(
            msg(&[("max-file", "x")]),
            "invalid value for max-file: x: strconv.Atoi: parsing \"x\": invalid syntax"
        );
        assert_eq!(msg(&[("max-file", "-1")]), "max-file must not be negative");
        assert_eq!(
            msg(&[("max-file", "1")]),
            "compression cannot be enabled when max file count is 1"
        );
        assert!(check(LOCAL, &opts(&[("max-file", "1"), ("compress", "false")])).is_ok());
        assert_eq!(
            msg(&[("compress", "yes")]),
            "invalid boolean value for compress: strconv.ParseBool: parsing \"yes\": invalid syntax"
        );
        assert_eq!(
            msg(&[("mode", "fast")]),
            "logger: logging mode not supported: fast"
        );
        assert!(check(NONE, &opts(&[("foo", "1")])).is_ok());
        assert!(check("syslog", &opts(&[("foo", "1")])).is_ok());
        assert_eq!(
            check("nope", &opts(&[])).unwrap_err().to_string(),
            "logger: no log driver named 'nope' is registered"
        );
    }

    #[test]
    fn human_sizes_are_decimal() {
        assert_eq!(human_size("20m"), Some(20_000_000));
        assert_eq!(human_size("1k"), Some(1000));
        assert_eq!(human_size("1KiB"), Some(1000));
        assert_eq!(human_size("1.5 kb"), Some(1500));
        assert_eq!(human_size("42"), Some(42));
        for bad in ["", "k", "-1", "1x", "1..5k", ".5k"] {
            assert_eq!(human_size(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_default_fills_what_the_container_leaves_out() {
        let default = DefaultLog {
            driver: LOCAL.into(),
            opts: opts(&[("max-file", "3"), ("max-size", "1k")]),
        };
        let mut hc = HostSpec::default();
        merge_default(&mut hc, &default).unwrap();
        let log = hc.log_config.as_ref().unwrap();
        assert_eq!(log.typ.as_deref(), Some(LOCAL));
        assert_eq!(log.config.as_ref().unwrap(), &default.opts);
        let p = plan(&hc, Path::new("/c/c-json.log"), Path::new("/c"));
        assert_eq!(p.driver, LOCAL);
        assert_eq!(p.path, Path::new("/c/local-logs/container.log"));
        assert_eq!(
            (p.max_size, p.max_file, p.compress),
            (Some(1000), Some(3), true)
        );

        let mut own = HostSpec {
            log_config: Some(LogConfig {
                typ: Some(LOCAL.into()),
                config: Some(opts(&[("max-size", "2k")])),
            }),
            ..HostSpec::default()
        };
        merge_default(&mut own, &default).unwrap();
        let config = own.log_config.unwrap().config.unwrap();
        assert_eq!(config["max-size"], "2k");
        assert_eq!(config["max-file"], "3");

        let mut other = HostSpec {
            log_config: Some(LogConfig {
                typ: Some(JSON_FILE.into()),
                config: None,
            }),
            ..HostSpec::default()
        };
        merge_default(&mut other, &default).unwrap();
        assert!(other.log_config.unwrap().config.unwrap().is_empty());
        assert_eq!(plugins()[..3], ["awslogs", "fluentd", "gcplogs"]);
    }
}
