//! The registry client: the OCI distribution spec's pull and push, between a registry and the
//! image store of `berth-image`.
//!
//! - [`client`]: endpoints tried in order, scheme (HTTPS, or plain HTTP for loopback and
//!   insecure registries) and auth (anonymous, Basic, Bearer tokens from the `WWW-Authenticate`
//!   challenge);
//! - [`hosts`]: a registry's endpoints: containerd's `hosts.toml`, dockerd's mirrors;
//! - [`credentials`]: saved logins, in docker's `config.json` `auths` format;
//! - [`resolve`]: a reference to its manifest, the platform's from an index;
//! - [`pull`]: layers fetched in parallel and streamed into snapshots while verified;
//! - [`push`]: blobs skipped, mounted or uploaded, then the manifest;
//! - [`progress`]: per-layer events in Docker's words;
//! - [`search`]: `docker search`, the v1 search API.
//!
//! HTTP is reqwest's (hyper, rustls with the system's roots); the distribution protocol on top
//! is written here, since no maintained crate does both pull-into-a-snapshot streaming and the
//! store's resumable ingest.

pub mod client;
pub mod credentials;
pub mod hosts;
pub mod progress;
pub mod pull;
pub mod push;
pub mod resolve;
pub mod search;

pub use client::{Client, ClientError, ClientOptions};
pub use pull::{pull, PullError, PullOptions, Pulled};
pub use push::{push, PushError, PushOptions, Pushed};
