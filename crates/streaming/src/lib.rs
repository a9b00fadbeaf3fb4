//! The Kubernetes CRI streaming server: what kubelet's `pkg/kubelet/cri/streaming` is to
//! containerd. The CRI's `Exec`, `Attach` and `PortForward` calls store their request here
//! ([`Server::get_exec`], [`Server::get_attach`], [`Server::get_port_forward`]) and answer
//! with the URL returned, `http://127.0.0.1:PORT/{exec,attach,portforward}/<token>`; the
//! token is random, single-use and expires after a minute. kubectl (through the API server
//! and kubelet) and crictl then connect to that URL and upgrade the connection to:
//!
//! - SPDY/3.1 ([`spdy`], our own codec) with `X-Stream-Protocol-Version`
//!   `v5`/`v4`/`v3`/`v2.channel.k8s.io` or `channel.k8s.io` for exec and attach (one stream
//!   per channel, named by its `streamtype` header), `portforward.k8s.io` for port forwarding
//!   (a data and an error stream per forwarded connection);
//! - WebSocket with the subprotocols `v5.channel.k8s.io` (with the close-channel message),
//!   `v4.channel.k8s.io`, their base64 variants and the older unversioned ones: channel 0
//!   stdin, 1 stdout, 2 stderr, 3 error, 4 resize; for port forwarding two channels per port.
//!
//! The engine does the work through the [`Backend`] trait, with the container's streams as
//! plain async readers and writers ([`Streams`]). An exec's exit code goes back on the error
//! channel as kubelet writes it (a JSON `Status`, `NonZeroExitCode` with an `ExitCode` cause).

pub mod backend;
mod portforward;
mod remotecommand;
pub mod request;
mod server;
mod session;
pub mod spdy;
mod ws;

pub use backend::{Backend, BackendError, PortStream, Streams, TerminalSize};
pub use request::{AttachRequest, ExecRequest, PortForwardRequest};
pub use server::{Config, Server, ServerError};
