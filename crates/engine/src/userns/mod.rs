//! User-namespace remapping (berthd's `--userns-remap`, as dockerd's): every container that does
//! not ask for `--userns=host` gets a user namespace whose root is the first id of a subordinate
//! range of the remap user (`/etc/subuid`, `/etc/subgid`).
//!
//! Unlike dockerd, which copies and chowns every image layer into a tree of its own per remap
//! user, the layers stay as they are: the rootfs overlay takes them through idmapped mounts
//! ([`rootfs`]), so remapping costs no copy and no disk. The writable layer is owned by the
//! remapped root, and so are the files the container writes there.
//!
//! - [`Remap::setup`] reads the flag: `default` (the user and group `dockremap`, made with a
//!   range when missing), `USER[:GROUP]` or `UID[:GID]`.
//! - [`Remap::check`] refuses what dockerd refuses with remapping (`--privileged`,
//!   `--network host`, `--pid host` without `--userns=host`).
//! - [`Remap::namespace`] and the mappings go into the OCI config ([`crate::spec`]).

pub mod rootfs;
mod subid;

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::Arc;

use oci_spec::runtime::{LinuxIdMapping, LinuxIdMappingBuilder};

use crate::container::spec::HostSpec;

pub use subid::IdRange;

/// The user dockerd (and berthd) makes for `--userns-remap default`.
pub const DEFAULT_USER: &str = "dockremap";

#[derive(Debug, thiserror::Error)]
pub enum UsernsError {
    #[error("Invalid user/group specification in --userns-remap: {0:?}")]
    Spec(String),
    #[error("Uid {0} has no entry in /etc/passwd")]
    NoUid(u32),
    #[error("Gid {0} has no entry in /etc/group")]
    NoGid(u32),
    #[error("Error during uid lookup for {0:?}: no such user")]
    NoUser(String),
    #[error("Error during gid lookup for {0:?}: no such group")]
    NoGroup(String),
    #[error("reading {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("Couldn't create subordinate ID ranges: {0}")]
    Create(String),
    #[error("Can't create ID mappings: no subuid ranges found for user {0:?}")]
    NoSubuid(String),
    #[error("Can't create ID mappings: no subgid ranges found for user {0:?}")]
    NoSubgid(String),
    #[error("the user namespace of the remapped layers: {0}")]
    Namespace(#[from] berth_runtime::idmap::IdmapError),
    #[error("an id mapping: {0}")]
    Mapping(String),
}

/// The daemon's remapping: who containers' root is on the host, and a user namespace with the
/// same mappings that the image layers are idmapped with.
#[derive(Debug, Clone)]
pub struct Remap {
    /// The remap user's and group's names (`dockremap:dockremap`).
    pub user: String,
    pub group: String,
    pub uids: Vec<IdRange>,
    pub gids: Vec<IdRange>,
    /// A user namespace with these mappings (only its descriptor keeps it).
    userns: Arc<OwnedFd>,
}

impl Remap {
    /// Reads `--userns-remap` (empty: none), making the `dockremap` user and its ranges for
    /// `default` when missing, as dockerd does. None also for `root`, which dockerd takes as
    /// "no remapping" (root mapped onto itself).
    pub fn setup(spec: &str) -> Result<Option<Remap>, UsernsError> {
        if spec.is_empty() {
            return Ok(None);
        }
        let (user, group) = subid::resolve(spec)?;
        if user.name == "root" {
            tracing::warn!(
                "User namespaces: root cannot be remapped with itself; user namespaces are OFF"
            );
            return Ok(None);
        }
        let uids = subid::ranges("/etc/subuid", &user)?;
        if uids.is_empty() {
            return Err(UsernsError::NoSubuid(user.name));
        }
        let gids = subid::ranges("/etc/subgid", &user)?;
        if gids.is_empty() {
            return Err(UsernsError::NoSubgid(user.name));
        }
        let userns = berth_runtime::idmap::userns_with(&mappings(&uids)?, &mappings(&gids)?)?;
        Ok(Some(Remap {
            user: user.name,
            group: group.name,
            uids,
            gids,
            userns: Arc::new(userns),
        }))
    }

    /// The host uid and gid of the containers' root.
    pub fn root(&self) -> (u32, u32) {
        let first = |r: &[IdRange]| r.first().map(|r| r.host).unwrap_or_default();
        (first(&self.uids), first(&self.gids))
    }

    /// `linux.uidMappings` and `linux.gidMappings`.
    pub fn mappings(&self) -> Result<(Vec<LinuxIdMapping>, Vec<LinuxIdMapping>), UsernsError> {
        Ok((mappings(&self.uids)?, mappings(&self.gids)?))
    }

    /// Host ids back to the containers' (for a commit of a container's layer).
    pub fn to_container(&self) -> berth_image::layer::IdMap {
        let ranges = |r: &[IdRange]| {
            let mut inner = 0u32;
            r.iter()
                .map(|r| {
                    let m = (r.host, inner, r.size);
                    inner = inner.saturating_add(r.size);
                    m
                })
                .collect()
        };
        berth_image::layer::IdMap {
            uids: ranges(&self.uids),
            gids: ranges(&self.gids),
        }
    }

    /// The user namespace the layers are idmapped with.
    pub fn userns(&self) -> BorrowedFd<'_> {
        self.userns.as_fd()
    }

    /// dockerd's refusals of a container in the remapped namespace (`UsernsMode` not `host`).
    pub fn check(host: &HostSpec) -> Result<(), String> {
        if is_host(host) {
            return Ok(());
        }
        if host.privileged == Some(true) {
            return Err("privileged mode is incompatible with user namespaces.  You must run the container in the host namespace when running privileged mode".into());
        }
        if host.network_mode.as_deref() == Some("host") {
            return Err(
                "cannot share the host's network namespace when user namespaces are enabled".into(),
            );
        }
        if host.pid_mode.as_deref() == Some("host") {
            return Err(
                "cannot share the host PID namespace when user namespaces are enabled".into(),
            );
        }
        Ok(())
    }
}

impl crate::Engine {
    /// The remapping `c` runs with: the daemon's, unless `c` is in the host's user namespace.
    pub fn remap_of(&self, c: &crate::container::Container) -> Option<&Remap> {
        self.config
            .userns_remap
            .as_ref()
            .filter(|_| !is_host(&c.host_config))
    }

    /// Gives the /etc files of `c` in `etc_dir` to its remapped root, who writes them, as with
    /// dockerd (nothing without remapping).
    pub(crate) fn chown_etc_files(
        &self,
        c: &crate::container::Container,
        etc_dir: &std::path::Path,
    ) -> crate::error::Result<()> {
        for name in ["hostname", "hosts", "resolv.conf"] {
            let file = etc_dir.join(name);
            if file.exists() {
                self.chown_to_root_of(c, &file)
                    .map_err(|e| crate::error::EngineError::internal("chown /etc files", e))?;
            }
        }
        Ok(())
    }

    /// Gives `path` to the remapped root of `c` (nothing without remapping).
    pub(crate) fn chown_to_root_of(
        &self,
        c: &crate::container::Container,
        path: &std::path::Path,
    ) -> std::io::Result<()> {
        match self.remap_of(c) {
            Some(r) => chown_root(r, path),
            None => Ok(()),
        }
    }
}

/// Gives `path` (not following a symlink) to the remapped root.
pub fn chown_root(remap: &Remap, path: &std::path::Path) -> std::io::Result<()> {
    let (uid, gid) = remap.root();
    std::os::unix::fs::lchown(path, Some(uid), Some(gid))
}

/// `--userns=host`: the container stays in the host's user namespace.
pub fn is_host(host: &HostSpec) -> bool {
    host.userns_mode.as_deref() == Some("host")
}

/// dockerd's check of `UsernsMode`: empty or `host`.
pub fn check_mode(host: &HostSpec) -> Result<(), String> {
    match host.userns_mode.as_deref() {
        None | Some("") | Some("host") => Ok(()),
        Some(other) => Err(format!("invalid USER mode: {other}")),
    }
}

/// The ranges as OCI mappings: container ids from 0 on, one range after the other, as
/// dockerd's `createIDMap` lays them.
fn mappings(ranges: &[IdRange]) -> Result<Vec<LinuxIdMapping>, UsernsError> {
    let mut container = 0u32;
    ranges
        .iter()
        .map(|r| {
            let m = LinuxIdMappingBuilder::default()
                .container_id(container)
                .host_id(r.host)
                .size(r.size)
                .build()
                .map_err(|e| UsernsError::Mapping(e.to_string()))?;
            container = container.saturating_add(r.size);
            Ok(m)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_follow_each_other_from_zero() {
        let maps = mappings(&[
            IdRange {
                host: 100000,
                size: 65536,
            },
            IdRange {
                host: 300000,
                size: 10,
            },
        ])
        .unwrap();
        assert_eq!(
            maps.iter()
                .map(|m| (m.container_id(), m.host_id(), m.size()))
                .collect::<Vec<_>>(),
            [(0, 100000, 65536), (65536, 300000, 10)]
        );
    }

    #[test]
    fn dockerd_refusals() {
        let mut h = HostSpec {
            privileged: Some(true),
            ..Default::default()
        };
        assert!(Remap::check(&h).unwrap_err().starts_with("privileged mode"));
        h.userns_mode = Some("host".into());
        assert!(Remap::check(&h).is_ok());
        let h = HostSpec {
            network_mode: Some("host".into()),
            ..Default::default()
        };
        assert!(Remap::check(&h).unwrap_err().contains("network namespace"));
        let h = HostSpec {
            pid_mode: Some("host".into()),
            ..Default::default()
        };
        assert!(Remap::check(&h).unwrap_err().contains("PID namespace"));
        assert!(check_mode(&HostSpec {
            userns_mode: Some("private".into()),
            ..Default::default()
        })
        .is_err());
    }
}
