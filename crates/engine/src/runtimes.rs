//! The OCI runtimes containers run on, as dockerd has them: Berth's own, in-process in the
//! monitor ([`crate::DEFAULT_RUNTIME`]), and foreign ones driven through their runc-compatible
//! command line (`--add-runtime NAME=PATH`, daemon.json's `runtimes`; `runc` whenever a `runc`
//! binary is in PATH). A container's runtime is its `HostConfig.Runtime`, filled in with the
//! default one at create; every runtime keeps its state under a root of its own.

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::container::spec::HostSpec;
use berth_monitor::driver::Driver;
pub use berth_monitor::driver::Foreign;

use crate::container::Container;
use crate::error::{EngineError, Result};
use crate::Engine;

/// dockerd's name for the runtime it always has: the `runc` binary in PATH.
pub const RUNC: &str = "runc";

/// The names no configured runtime may take (dockerd reserves `runc` the same way).
pub const RESERVED: &[&str] = &[crate::DEFAULT_RUNTIME, RUNC];

/// Whether `name` may name a runtime: it becomes a directory name of the exec root.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name != "."
        && name != ".."
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

/// The runtimes of a daemon: the configured ones, with `runc` added when a `runc` binary is in
/// `path` (dockerd's `runc`), and none named as Berth's own or as `runc`.
pub fn with_stock(
    configured: BTreeMap<String, Foreign>,
    path: Option<&std::ffi::OsStr>,
) -> std::result::Result<BTreeMap<String, Foreign>, String> {
    let mut all = BTreeMap::new();
    for (name, foreign) in configured {
        if RESERVED.contains(&name.as_str()) {
            return Err(format!("runtime name '{name}' is reserved"));
        }
        if !valid_name(&name) {
            return Err(format!(
                "invalid runtime name {name:?}: only [a-zA-Z0-9_.-] are allowed"
            ));
        }
        all.insert(name, foreign);
    }
    let runc = path.and_then(|p| {
        std::env::split_paths(p)
            .map(|dir| dir.join(RUNC))
            .find(|p| p.is_file())
    });
    if let Some(runc) = runc {
        all.insert(
            RUNC.to_string(),
            Foreign {
                path: runc,
                args: Vec::new(),
            },
        );
    }
    Ok(all)
}

/// dockerd's answer to a runtime it does not have.
fn unknown(name: &str) -> EngineError {
    EngineError::InvalidParameter(format!("Unknown runtime specified {name}"))
}

impl Engine {
    /// The foreign runtime named `name`, `None` for Berth's own; unknown names are refused
    /// with dockerd's message.
    pub fn foreign_runtime(&self, name: &str) -> Result<Option<&Foreign>> {
        if name == crate::DEFAULT_RUNTIME {
            return Ok(None);
        }
        self.config
            .runtimes
            .get(name)
            .map(Some)
            .ok_or_else(|| unknown(name))
    }

    /// The runtime `HostConfig.Runtime` asks for (the default one when empty), checked at
    /// create as dockerd checks it; its name.
    pub(crate) fn check_runtime(&self, hc: &HostSpec) -> Result<String> {
        let name = match hc.runtime.as_deref() {
            None | Some("") => self.config.default_runtime.clone(),
            Some(name) => name.to_string(),
        };
        self.foreign_runtime(&name)?;
        Ok(name)
    }

    /// The name of container `c`'s runtime.
    pub(crate) fn runtime_name(c: &Container) -> &str {
        c.host_config
            .runtime
            .as_deref()
            .filter(|n| !n.is_empty())
            .unwrap_or(crate::DEFAULT_RUNTIME)
    }

    /// Where runtime `name` keeps its containers' state: Berth's under `<exec-root>/runtime`,
    /// a foreign one's under `<exec-root>/runtimes/NAME`.
    pub fn runtime_root_of(&self, name: &str) -> PathBuf {
        match name {
            crate::DEFAULT_RUNTIME => self.runtime_root(),
            _ => self.config.exec_root.join("runtimes").join(name),
        }
    }

    /// The runtime container `c` runs on.
    pub(crate) fn driver(&self, c: &Container) -> Result<Driver> {
        let name = Self::runtime_name(c);
        let foreign = self.foreign_runtime(name)?;
        Ok(Driver::new(&self.runtime_root_of(name), foreign, None))
    }

    /// The runtime of container `id` for a teardown: Berth's own when the record or its
    /// runtime is gone (what is left then is Berth's, or nobody's to find).
    pub(crate) fn driver_of(&self, id: &str) -> Driver {
        self.containers
            .get(id)
            .ok()
            .and_then(|c| self.driver(&c).ok())
            .unwrap_or_else(|| Driver::Berth(berth_runtime::Runtime::new(self.runtime_root())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(valid_name("crun"));
        assert!(valid_name("io.containerd.runc.v2"));
        assert!(!valid_name("a/b"));
        assert!(!valid_name(".."));
        assert!(!valid_name(""));
    }

    #[test]
    fn stock_runc_from_path_and_reserved_names() {
        let dir = tempfile::tempdir().expect("tempdir");
        let foreign = |p: &str| Foreign {
            path: PathBuf::from(p),
            args: Vec::new(),
        };
        let none = with_stock(BTreeMap::new(), Some(dir.path().as_os_str())).expect("ok");
        assert!(none.is_empty());
        std::fs::write(dir.path().join("runc"), "").expect("write");
        let path = std::env::join_paths(["/nonexistent", dir.path().to_str().expect("utf-8")])
            .expect("PATH");
        let configured = BTreeMap::from([("crun".to_string(), foreign("/usr/bin/crun"))]);
        let all = with_stock(configured, Some(&path)).expect("ok");
        assert_eq!(all.keys().collect::<Vec<_>>(), ["crun", "runc"]);
        assert_eq!(all["runc"].path, dir.path().join("runc"));
        for name in ["runc", "berth"] {
            let configured = BTreeMap::from([(name.to_string(), foreign("/x"))]);
            let e = with_stock(configured, None).expect_err("reserved");
            assert_eq!(e, format!("runtime name '{name}' is reserved"));
        }
        let configured = BTreeMap::from([("a/b".to_string(), foreign("/x"))]);
        assert!(with_stock(configured, None).is_err());
    }
}
