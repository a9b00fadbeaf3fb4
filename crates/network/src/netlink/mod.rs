//! Links, addresses and routes through rtnetlink (no `ip` processes).
//!
//! A [`Netlink`] is one rtnetlink connection, bound to the network namespace it was opened in:
//! [`Netlink::host`] for the daemon's namespace, [`Netlink::in_netns`] for a container's. A
//! netlink socket belongs to the namespace of the thread that created it, and `setns` changes
//! only the calling thread; so `in_netns` opens the socket on a short-lived thread of its own
//! that joins the namespace (never a runtime worker, which must stay in the host namespace),
//! registers the socket with the caller's tokio runtime and ends. The connection's task then
//! runs on that runtime like any other; it ends when the [`Netlink`] is dropped.
//!
//! The veth pair is made with its container end created directly in the container's namespace
//! (`IFLA_NET_NS_FD` in the peer's attributes) under its final name, MAC and MTU, so no move or
//! rename is needed; only the address, the link state and the default route need a socket in
//! the container's namespace.

mod bridge;
mod container;
mod routes;
mod veth;

use std::fs::File;
use std::path::{Path, PathBuf};

use futures_util::TryStreamExt;
use nix::sched::{setns, CloneFlags};
use rtnetlink::Handle;

pub use container::ContainerSide;
pub use veth::VethPair;

/// A netlink operation that failed.
#[derive(Debug, thiserror::Error)]
pub enum NetlinkError {
    /// Not called from inside a tokio runtime.
    #[error("netlink needs a tokio runtime: {0}")]
    NoRuntime(String),
    /// The netlink socket could not be opened.
    #[error("opening a netlink socket: {0}")]
    Socket(std::io::Error),
    /// The network namespace file could not be opened or joined.
    #[error("network namespace {}: {source}", path.display())]
    Netns {
        /// The namespace file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The kernel refused a request.
    #[error("{op}: {source}")]
    Request {
        /// What was asked, and of which object.
        op: String,
        /// The kernel's answer.
        source: rtnetlink::Error,
    },
    /// A link that should exist does not.
    #[error("link {0} not found")]
    NoLink(String),
}

impl NetlinkError {
    /// The errno of a refused request, if that is what this is.
    pub fn errno(&self) -> Option<i32> {
        match self {
            NetlinkError::Request {
                source: rtnetlink::Error::NetlinkError(msg),
                ..
            } => Some(msg.raw_code().abs()),
            _ => None,
        }
    }
}

/// Wraps a failed request with a description of what it asked.
fn request(op: impl Into<String>) -> impl FnOnce(rtnetlink::Error) -> NetlinkError {
    let op = op.into();
    move |source| NetlinkError::Request { op, source }
}

/// One rtnetlink connection, in the namespace it was opened in.
#[derive(Debug, Clone)]
pub struct Netlink {
    handle: Handle,
}

impl Netlink {
    /// A connection in the calling thread's network namespace (the host's, for the daemon).
    /// Must be called inside a tokio runtime, which runs the connection.
    pub fn host() -> Result<Self, NetlinkError> {
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|e| NetlinkError::NoRuntime(e.to_string()))?;
        let (connection, handle, _) = rtnetlink::new_connection().map_err(NetlinkError::Socket)?;
        runtime.spawn(connection);
        Ok(Netlink { handle })
    }

    /// A connection in the network namespace pinned at `netns` (a bind-mounted nsfs file, as
    /// `/run/berth/netns/<id>`, or `/proc/<pid>/ns/net`).
    pub fn in_netns(netns: &Path) -> Result<Self, NetlinkError> {
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|e| NetlinkError::NoRuntime(e.to_string()))?;
        let netns_err = |source| NetlinkError::Netns {
            path: netns.to_path_buf(),
            source,
        };
        let file = File::open(netns).map_err(netns_err)?;
        let opened = std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    setns(&file, CloneFlags::CLONE_NEWNET)
                        .map_err(|e| netns_err(std::io::Error::from(e)))?;
                    let _entered = runtime.enter();
                    rtnetlink::new_connection().map_err(NetlinkError::Socket)
                })
                .join()
        });
        let (connection, handle, _) = opened.map_err(|_| {
            NetlinkError::Socket(std::io::Error::other("the netns thread panicked"))
        })??;
        runtime.spawn(connection);
        Ok(Netlink { handle })
    }

    /// The index of link `name`, or `None` if there is no such link.
    pub async fn link_index(&self, name: &str) -> Result<Option<u32>, NetlinkError> {
        let found = self
            .handle
            .link()
            .get()
            .match_name(name.to_string())
            .execute()
            .try_next()
            .await;
        match found {
            Ok(msg) => Ok(msg.map(|m| m.header.index)),
            Err(e) => {
                let e = request(format!("looking up link {name}"))(e);
                match e.errno() {
                    Some(libc_errno::ENODEV) => Ok(None),
                    _ => Err(e),
                }
            }
        }
    }

    /// Gives link `index` (named `name`, for errors) `address`; one it has already is fine.
    /// An IPv6 address is added without duplicate address detection (`nodad`), as dockerd
    /// adds them: usable at once, not tentative for a second or two.
    pub(crate) async fn add_address(
        &self,
        index: u32,
        address: impl Into<ipnet::IpNet>,
        name: &str,
    ) -> Result<(), NetlinkError> {
        use rtnetlink::packet_route::address::{AddressAttribute, AddressFlags};
        let address: ipnet::IpNet = address.into();
        let mut add = self
            .handle
            .address()
            .add(index, address.addr(), address.prefix_len());
        if address.addr().is_ipv6() {
            add.message_mut()
                .attributes
                .push(AddressAttribute::Flags(AddressFlags::Nodad));
        }
        let added = add.execute().await;
        match added {
            Err(e) => {
                let e = request(format!("adding {address} to {name}"))(e);
                if e.errno() == Some(libc_errno::EEXIST) {
                    Ok(())
                } else {
                    Err(e)
                }
            }
            Ok(()) => Ok(()),
        }
    }

    /// Sets link `index` (named `name`, for errors) up.
    pub(crate) async fn set_up(&self, index: u32, name: &str) -> Result<(), NetlinkError> {
        self.handle
            .link()
            .set(rtnetlink::LinkUnspec::new_with_index(index).up().build())
            .execute()
            .await
            .map_err(request(format!("setting {name} up")))
    }

    /// Deletes link `name` (for a veth, both ends); a missing link is not an error.
    pub async fn delete_link(&self, name: &str) -> Result<(), NetlinkError> {
        let Some(index) = self.link_index(name).await? else {
            return Ok(());
        };
        self.delete_index(index, name).await
    }

    /// Deletes link number `index` (once known as `name`), in a task of its own: the kernel
    /// takes tens of milliseconds to delete a veth (it waits for RCU grace periods), which no
    /// caller needs to wait for. By index, so that a new link of the same name made meanwhile
    /// is not touched. Failures are logged.
    pub fn delete_index_later(&self, index: u32, name: String) {
        let this = self.clone();
        tokio::spawn(async move {
            if let Err(e) = this.delete_index(index, &name).await {
                tracing::warn!(link = %name, error = %e, "deleting a link");
            }
        });
    }

    async fn delete_index(&self, index: u32, name: &str) -> Result<(), NetlinkError> {
        match self.handle.link().del(index).execute().await {
            Ok(()) => Ok(()),
            Err(e) => {
                let e = request(format!("deleting link {name}"))(e);
                match e.errno() {
                    Some(libc_errno::ENODEV) => Ok(()),
                    _ => Err(e),
                }
            }
        }
    }

    /// The names of all links whose name starts with `prefix`.
    pub async fn links_with_prefix(&self, prefix: &str) -> Result<Vec<String>, NetlinkError> {
        let mut links = self.handle.link().get().execute();
        let mut names = Vec::new();
        while let Some(msg) = links.try_next().await.map_err(request("listing links"))? {
            for attr in msg.attributes {
                if let rtnetlink::packet_route::link::LinkAttribute::IfName(name) = attr {
                    if name.starts_with(prefix) {
                        names.push(name);
                    }
                }
            }
        }
        Ok(names)
    }
}

/// The few errno values the module tells apart (as plain numbers: `nix::errno::Errno` as i32).
mod libc_errno {
    pub const EEXIST: i32 = nix::errno::Errno::EEXIST as i32;
    pub const ENODEV: i32 = nix::errno::Errno::ENODEV as i32;
}
