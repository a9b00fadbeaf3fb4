//! The command line the daemon runs, parsed by hand: clap would cost the monitor more memory than
//! its dozen flags are worth (every monitor stays resident as long as its container runs).

use std::os::fd::RawFd;
use std::path::PathBuf;

use crate::logfile::Format;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{0} needs a value")]
    MissingValue(String),
    #[error("invalid value {value:?} for {flag}")]
    BadValue { flag: String, value: String },
    #[error("unknown argument {0:?}")]
    Unknown(String),
    #[error("{0} is required")]
    Required(&'static str),
}

/// Usage text, for errors.
pub const USAGE: &str =
    "usage: berth-monitor --id ID --bundle DIR --runtime-root DIR --dir STATE_DIR --log FILE \
[--log-driver json-file|local|none|cri] [--log-compress] \
[--log-max-size BYTES] [--log-max-file N] [--tty] [--stdin] [--stdin-once] [--ready-fd FD] \
[--healthcheck FILE] [--cgroup-mounts FILE] [--runtime-path PATH [--runtime-arg ARG]...]";

/// What the monitor was told to do.
#[derive(Debug, Clone, Default)]
pub struct Config {
    pub id: String,
    pub bundle: PathBuf,
    pub runtime_root: PathBuf,
    /// Holds `monitor.sock`, `monitor.pid`, `init.pid`, `exit.json`.
    pub dir: PathBuf,
    pub log: PathBuf,
    /// The log driver's format (`--log-driver`, json-file when absent; `--log-compress` for
    /// `local`).
    pub log_format: Format,
    pub log_max_size: Option<u64>,
    pub log_max_file: u32,
    pub tty: bool,
    pub stdin: bool,
    pub stdin_once: bool,
    pub ready_fd: Option<RawFd>,
    /// The health check to run ([`crate::protocol::HealthCheck`] as JSON).
    pub healthcheck: Option<PathBuf>,
    /// The cgroup mount lines of the daemon's mountinfo (`berth_cgroups::cgroup_mounts`),
    /// so that this process need not read the whole table.
    pub cgroup_mounts: Option<PathBuf>,
    /// A foreign OCI runtime's binary (runc's command line) instead of Berth's own runtime.
    pub runtime_path: Option<PathBuf>,
    /// Its arguments before every command (daemon.json's `runtimeArgs`).
    pub runtime_args: Vec<String>,
}

impl Config {
    /// Parses the arguments (without the program name).
    pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Config, ConfigError> {
        let mut cfg = Config {
            log_max_file: 1,
            ..Config::default()
        };
        let mut compress = false;
        let (mut id, mut bundle, mut root, mut dir, mut log) = (None, None, None, None, None);
        let mut args = args.into_iter();
        while let Some(arg) = args.next() {
            let (flag, inline) = match arg.split_once('=') {
                Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
                _ => (arg.clone(), None),
            };
            let mut value = || {
                inline
                    .clone()
                    .or_else(|| args.next())
                    .ok_or_else(|| ConfigError::MissingValue(flag.clone()))
            };
            match flag.as_str() {
                "--id" => id = Some(value()?),
                "--bundle" => bundle = Some(PathBuf::from(value()?)),
                "--runtime-root" => root = Some(PathBuf::from(value()?)),
                "--dir" => dir = Some(PathBuf::from(value()?)),
                "--log" => log = Some(PathBuf::from(value()?)),
                "--log-driver" => {
                    cfg.log_format = match value()?.as_str() {
                        "json-file" => Format::JsonFile,
                        "local" => Format::Local { compress: false },
                        "none" => Format::None,
                        "cri" => Format::Cri,
                        other => {
                            return Err(ConfigError::BadValue {
                                flag,
                                value: other.to_string(),
                            })
                        }
                    }
                }
                "--log-compress" => compress = true,
                "--log-max-size" => cfg.log_max_size = Some(number(&flag, &value()?)?),
                "--log-max-file" => cfg.log_max_file = number(&flag, &value()?)?,
                "--ready-fd" => cfg.ready_fd = Some(number(&flag, &value()?)?),
                "--healthcheck" => cfg.healthcheck = Some(PathBuf::from(value()?)),
                "--cgroup-mounts" => cfg.cgroup_mounts = Some(PathBuf::from(value()?)),
                "--runtime-path" => cfg.runtime_path = Some(PathBuf::from(value()?)),
                "--runtime-arg" => cfg.runtime_args.push(value()?),
                "--tty" => cfg.tty = true,
                "--stdin" => cfg.stdin = true,
                "--stdin-once" => cfg.stdin_once = true,
                _ => return Err(ConfigError::Unknown(arg)),
            }
        }
        if let Format::Local { compress: c } = &mut cfg.log_format {
            *c = compress;
        }
        cfg.id = id.ok_or(ConfigError::Required("--id"))?;
        cfg.bundle = bundle.ok_or(ConfigError::Required("--bundle"))?;
        cfg.runtime_root = root.ok_or(ConfigError::Required("--runtime-root"))?;
        cfg.dir = dir.ok_or(ConfigError::Required("--dir"))?;
        cfg.log = log.ok_or(ConfigError::Required("--log"))?;
        Ok(cfg)
    }

    pub fn socket_path(&self) -> PathBuf {
        self.dir.join("monitor.sock")
    }

    pub fn exit_path(&self) -> PathBuf {
        self.dir.join("exit.json")
    }

    /// The foreign runtime, if one was named.
    pub fn foreign(&self) -> Option<crate::driver::Foreign> {
        self.runtime_path
            .as_ref()
            .map(|path| crate::driver::Foreign {
                path: path.clone(),
                args: self.runtime_args.clone(),
            })
    }
}

fn number<T: std::str::FromStr>(flag: &str, value: &str) -> Result<T, ConfigError> {
    value.parse().map_err(|_| ConfigError::BadValue {
        flag: flag.to_string(),
        value: value.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses() {
        let args = "--id c1 --bundle /b --runtime-root /r --dir /d --log /l --log-max-size=100 --tty --ready-fd 5";
        let cfg = Config::parse(args.split(' ').map(String::from)).unwrap();
        assert_eq!(cfg.id, "c1");
        assert_eq!(cfg.log_max_size, Some(100));
        assert_eq!(cfg.log_max_file, 1);
        assert_eq!(cfg.ready_fd, Some(5));
        assert!(cfg.tty && !cfg.stdin);
        assert_eq!(cfg.log_format, Format::JsonFile);
        let local = format!("{args} --log-compress --log-driver local");
        let cfg = Config::parse(local.split(' ').map(String::from)).unwrap();
        assert_eq!(cfg.log_format, Format::Local { compress: true });
        let none = format!("{args} --log-driver=none");
        let cfg = Config::parse(none.split(' ').map(String::from)).unwrap();
        assert_eq!(cfg.log_format, Format::None);
        let bad = format!("{args} --log-driver=syslog");
        assert!(Config::parse(bad.split(' ').map(String::from)).is_err());
        assert!(Config::parse(["--id".to_string()]).is_err());
        assert!(Config::parse(["--bogus".to_string()]).is_err());
        let args = "--id c1 --bundle /b --runtime-root /r --dir /d --log /l --runtime-path /usr/sbin/runc --runtime-arg=--debug --runtime-arg -x";
        let cfg = Config::parse(args.split(' ').map(String::from)).unwrap();
        let foreign = cfg.foreign().unwrap();
        assert_eq!(foreign.path, PathBuf::from("/usr/sbin/runc"));
        assert_eq!(foreign.args, ["--debug", "-x"]);
    }
}
