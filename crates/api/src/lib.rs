//! The Docker Engine API as Berth speaks it, shared by the daemon, the CLI and the tests:
//!
//! - [`models`]: the API's JSON types, from `bollard-stubs` (generated from the Engine API's
//!   own swagger definition, so field names and shapes are Docker's);
//! - [`stdcopy`]: the 8-byte-header multiplexing of stdout and stderr on one stream;
//! - [`query`]: Docker's query parameter rules (booleans, `filters` in both encodings).

pub mod client;
pub mod client_conn;
pub mod client_hijack;
pub mod query;
pub mod stdcopy;

pub use bollard_stubs::models;

/// The newest API version Berth serves, and the oldest it accepts.
pub const API_VERSION: &str = "1.43";
pub const MIN_API_VERSION: &str = "1.24";
