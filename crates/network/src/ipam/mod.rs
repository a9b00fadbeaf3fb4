//! IP address management: one [`Pool`] per network, each persisted as `<dir>/<network id>.json`
//! (atomically, see [`crate::persist`]) on every change, so addresses survive a daemon restart
//! and are released when their container is removed.

mod pool;
mod pool6;
pub mod subnets;

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};

use ipnet::IpNet;

pub use pool::Pool;
pub use pool6::Pool6;

use crate::persist::{self, PersistError};

/// What IPAM refuses, worded as Docker's IPAM words it.
#[derive(Debug, thiserror::Error)]
pub enum IpamError {
    /// The subnet overlaps another network's.
    #[error("Pool overlaps with other one on this address space")]
    Overlap,
    /// No default pool is free.
    #[error("could not find an available, non-overlapping IPv4 address pool among the defaults to assign to the network")]
    NoDefaultPool,
    /// No default IPv6 pool is free.
    #[error("could not find an available, non-overlapping IPv6 address pool among the defaults to assign to the network")]
    NoDefaultPool6,
    /// The subnet has no room for a gateway and a container.
    #[error("invalid subnet {0}: too small")]
    SubnetTooSmall(String),
    /// `--gateway` is not a host address of the subnet.
    #[error("no matching subnet for gateway {0}")]
    GatewayOutside(IpAddr),
    /// `--ip-range` is not inside the subnet.
    #[error("no matching subnet for range {0}")]
    RangeOutside(String),
    /// An auxiliary address is outside the subnet.
    #[error("no matching subnet for aux-address {0}")]
    AuxOutside(IpAddr),
    /// A requested address is outside the subnet.
    #[error("no configured subnet or ip-range contain the IP address {0}")]
    NotInSubnet(IpAddr),
    /// A requested address is taken (or is the gateway, or an auxiliary address).
    #[error("Address already in use")]
    InUse(IpAddr),
    /// The range is full.
    #[error("no available addresses on this pool")]
    Exhausted,
    /// The container already has an address on this network.
    #[error("container {container} already has address {ip} on this network")]
    ContainerHasAddress {
        /// The container.
        container: String,
        /// Its address.
        ip: IpAddr,
    },
    /// No pool for this network.
    #[error("no address pool for network {0}")]
    NoPool(String),
    /// A network id that cannot name a file.
    #[error("invalid network id {0:?}")]
    BadId(String),
    /// The thread writing a pool's record failed.
    #[error("saving the address pool: {0}")]
    SaveTask(String),
    /// The pool could not be read or written.
    #[error(transparent)]
    Persist(#[from] PersistError),
}

/// A pool's record still to be written (see [`Ipam::allocate_unsaved`]).
#[derive(Debug)]
#[must_use = "the allocation is not persisted until the save is written"]
pub struct Save {
    path: PathBuf,
    pool: Pool,
}

impl Save {
    /// Writes the record (atomically, without a sync; blocking). An address matters only
    /// while its container runs, and a crash of the machine, the one thing that can lose the
    /// write, ends every container: at the next start, recovery releases the addresses of
    /// containers that no longer run anyway.
    pub fn write(self) -> Result<(), IpamError> {
        Ok(persist::write_json_unsynced(&self.path, &self.pool)?)
    }
}

/// The pools of all networks, kept in memory and written through to `dir`.
#[derive(Debug)]
pub struct Ipam {
    dir: PathBuf,
    pools: BTreeMap<String, Pool>,
}

impl Ipam {
    /// Loads every pool under `dir` (created on first write).
    pub fn open(dir: &Path) -> Result<Self, IpamError> {
        let mut pools = BTreeMap::new();
        for path in persist::list(dir)? {
            let Some(id) = path.file_stem().and_then(|s| s.to_str()) else {
                continue;
            };
            pools.insert(id.to_string(), persist::read_json(&path)?);
        }
        Ok(Ipam {
            dir: dir.to_path_buf(),
            pools,
        })
    }

    /// The pool of network `id`.
    pub fn pool(&self, id: &str) -> Option<&Pool> {
        self.pools.get(id)
    }

    /// The network ids that have a pool.
    pub fn pool_ids(&self) -> Vec<String> {
        self.pools.keys().cloned().collect()
    }

    /// The subnets of all pools, IPv4 and IPv6.
    pub fn subnets(&self) -> Vec<IpNet> {
        self.pools
            .values()
            .flat_map(|p| {
                let v6 = p.v6.as_ref().map(|v6| IpNet::V6(v6.subnet));
                [Some(IpNet::V4(p.subnet)), v6].into_iter().flatten()
            })
            .collect()
    }

    /// Adds (and persists) the pool of a new network; its subnet must not overlap another's.
    pub fn add_pool(&mut self, id: &str, pool: Pool) -> Result<(), IpamError> {
        let path = self.path(id)?;
        let overlap = |other: &Pool| {
            subnets::overlaps(&other.subnet, &pool.subnet)
                || matches!((&other.v6, &pool.v6), (Some(a), Some(b))
                    if a.subnet.contains(&b.subnet.network()) || b.subnet.contains(&a.subnet.network()))
        };
        if self
            .pools
            .iter()
            .any(|(other, p)| other != id && overlap(p))
        {
            return Err(IpamError::Overlap);
        }
        persist::write_json(&path, &pool)?;
        self.pools.insert(id.to_string(), pool);
        Ok(())
    }

    /// Forgets the pool of network `id` and removes its file.
    pub fn remove_pool(&mut self, id: &str) -> Result<(), IpamError> {
        persist::remove(&self.path(id)?)?;
        self.pools.remove(id);
        Ok(())
    }

    /// Gives `container` an address on network `id` (see [`Pool::allocate`]) and persists it.
    pub fn allocate(
        &mut self,
        id: &str,
        container: &str,
        requested: Option<Ipv4Addr>,
    ) -> Result<Ipv4Addr, IpamError> {
        let (ip, save) = self.allocate_unsaved(id, container, requested)?;
        if let Err(e) = save.write() {
            if let Some(pool) = self.pools.get_mut(id) {
                pool.release(container);
            }
            return Err(e);
        }
        Ok(ip)
    }

    /// Like [`Ipam::allocate`], but returns the write to do instead of doing it, so that the
    /// caller can overlap it with other work (the attach path does it with the netlink
    /// requests). If the write fails, the caller must [`Ipam::release`] the address.
    pub fn allocate_unsaved(
        &mut self,
        id: &str,
        container: &str,
        requested: Option<Ipv4Addr>,
    ) -> Result<(Ipv4Addr, Save), IpamError> {
        let (ip, _, save) = self.allocate_dual_unsaved(id, container, requested, None)?;
        Ok((ip, save))
    }

    /// [`Ipam::allocate_unsaved`] of an IPv4 address and, when the network has an IPv6 pool,
    /// an IPv6 one (`requested6` if given); both or neither.
    pub fn allocate_dual_unsaved(
        &mut self,
        id: &str,
        container: &str,
        requested: Option<Ipv4Addr>,
        requested6: Option<Ipv6Addr>,
    ) -> Result<(Ipv4Addr, Option<Ipv6Addr>, Save), IpamError> {
        let path = self.path(id)?;
        let pool = self
            .pools
            .get_mut(id)
            .ok_or_else(|| IpamError::NoPool(id.to_string()))?;
        let ip = pool.allocate(container, requested)?;
        let ip6 = match pool.v6.as_mut() {
            None => None,
            Some(v6) => match v6.allocate(container, requested6) {
                Ok(ip6) => Some(ip6),
                Err(e) => {
                    pool.release(container);
                    return Err(e);
                }
            },
        };
        Ok((
            ip,
            ip6,
            Save {
                path,
                pool: pool.clone(),
            },
        ))
    }

    /// Takes `container`'s address on network `id` back and persists the pool (without a sync:
    /// recovery releases it again if a crash loses the write); returns the address if there was
    /// one. A release needs no space: when the write fails (a full disk), the address is free
    /// all the same, the pool's next write carries the release, and until then the record
    /// holds an address that recovery at start releases. (Undone in memory, it would stay
    /// taken by a container that is gone, and its network could not be removed.)
    pub fn release(&mut self, id: &str, container: &str) -> Result<Option<Ipv4Addr>, IpamError> {
        let path = self.path(id)?;
        let Some(pool) = self.pools.get_mut(id) else {
            return Ok(None);
        };
        let Some(ip) = pool.release(container) else {
            return Ok(None);
        };
        if let Err(e) = persist::write_json_unsynced(&path, pool) {
            tracing::warn!(network = %id, %container, error = %e, "released, not yet written");
        }
        Ok(Some(ip))
    }

    fn path(&self, id: &str) -> Result<PathBuf, IpamError> {
        if !crate::valid_id(id) {
            return Err(IpamError::BadId(id.to_string()));
        }
        Ok(self.dir.join(format!("{id}.json")))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// On a full disk an allocation fails and leaves nothing taken, and a release still frees
    /// the address; once there is space, the next write carries the release to the record.
    #[test]
    fn a_release_needs_no_space_and_a_failed_allocation_takes_nothing() {
        if berth_tests::smallfs::skip(false) {
            return;
        }
        let mut small = berth_tests::smallfs::SmallFs::tmpfs(256 << 10).unwrap();
        let dir = small.path().join("ipam");
        let mut ipam = Ipam::open(&dir).unwrap();
        let pool = Pool::new("10.9.8.0/24".parse().unwrap(), None, None).unwrap();
        ipam.add_pool("net", pool).unwrap();
        let a = ipam.allocate("net", "a", None).unwrap();
        small.fill().unwrap();

        assert!(ipam.allocate("net", "b", None).is_err(), "no space");
        assert_eq!(ipam.pool("net").unwrap().address_of("b"), None);
        assert_eq!(ipam.release("net", "a").unwrap(), Some(a));
        assert_eq!(ipam.pool("net").unwrap().address_of("a"), None);

        small.unfill();
        ipam.allocate("net", "c", None).unwrap();
        let reopened = Ipam::open(&dir).unwrap();
        let allocated: Vec<&String> = reopened.pool("net").unwrap().allocated.keys().collect();
        assert_eq!(allocated, ["c"]);
    }
}
