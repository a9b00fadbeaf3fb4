//! Berth's OCI runtime: turns an OCI bundle (config.json + root filesystem) into a running,
//! isolated, limited process, with the lifecycle of the OCI runtime spec.
//!
//! [`Runtime`] is the entry point; `berth-runtime` (src/main.rs) is a thin runc-compatible CLI over
//! it. Control groups and seccomp live in their own crates (`berth-cgroups`, `berth-seccomp`).

pub mod capabilities;
pub mod checkpoint;
pub mod console;
pub mod container;
pub mod error;
pub mod exec;
pub mod hooks;
pub mod idmap;
pub mod init;
pub mod launch;
pub mod mount_template;
pub mod namespaces;
pub mod netdev;
pub mod notify;
pub mod process;
pub mod readonly_exe;
pub mod rootfs;
pub mod scheduling;
pub mod spec;
pub mod state;
pub mod sync;
pub mod sys;

pub use container::Runtime;
pub use error::Error;
pub use launch::CreateOptions;
pub use state::{OciState, Status};
