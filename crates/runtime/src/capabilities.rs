//! The five capability sets of `process.capabilities`, applied with the `caps` crate.

use std::str::FromStr;

use caps::{CapSet, Capability, CapsHashSet};
use oci_spec::runtime::{Capabilities, LinuxCapabilities};

#[derive(Debug, thiserror::Error)]
pub enum CapabilityError {
    #[error("unknown capability {0:?}")]
    Unknown(String),
    #[error("setting the {set:?} capability set: {source}")]
    Set {
        set: CapSet,
        source: caps::errors::CapsError,
    },
}

/// The capabilities of one process, converted from the config.
#[derive(Debug, Clone, Default)]
pub struct CapabilitySets {
    pub bounding: CapsHashSet,
    pub effective: CapsHashSet,
    pub inheritable: CapsHashSet,
    pub permitted: CapsHashSet,
    pub ambient: CapsHashSet,
}

fn convert(set: &Option<Capabilities>) -> Result<CapsHashSet, CapabilityError> {
    set.iter()
        .flatten()
        .map(|c| {
            let name = format!("CAP_{c}");
            Capability::from_str(&name).map_err(|_| CapabilityError::Unknown(name))
        })
        .collect()
}

impl CapabilitySets {
    pub fn from_spec(caps: &LinuxCapabilities) -> Result<Self, CapabilityError> {
        Ok(Self {
            bounding: convert(caps.bounding())?,
            effective: convert(caps.effective())?,
            inheritable: convert(caps.inheritable())?,
            permitted: convert(caps.permitted())?,
            ambient: convert(caps.ambient())?,
        })
    }

    /// Drops what is not in the bounding set. Needs CAP_SETPCAP, so it runs before the uid changes.
    pub fn apply_bounding(&self) -> Result<(), CapabilityError> {
        for cap in caps::all() {
            if self.bounding.contains(&cap) {
                continue;
            }
            match caps::drop(None, CapSet::Bounding, cap) {
                Ok(()) => {}
                // A capability this kernel does not know is not in any set anyway.
                Err(_) if !caps::has_cap(None, CapSet::Bounding, cap).unwrap_or(false) => {}
                Err(source) => {
                    return Err(CapabilityError::Set {
                        set: CapSet::Bounding,
                        source,
                    })
                }
            }
        }
        Ok(())
    }

    /// Sets the permitted, inheritable, effective and ambient sets (after the uid change, which
    /// keeps the permitted set thanks to PR_SET_KEEPCAPS).
    pub fn apply(&self) -> Result<(), CapabilityError> {
        let set = |cset: CapSet, value: &CapsHashSet| {
            caps::set(None, cset, value)
                .map_err(|source| CapabilityError::Set { set: cset, source })
        };
        // Each capset(2) call must leave effective within permitted: shrink effective first, and
        // permitted last, while the full permitted set still allows the inheritable set.
        set(CapSet::Effective, &self.effective)?;
        set(CapSet::Inheritable, &self.inheritable)?;
        set(CapSet::Permitted, &self.permitted)?;
        caps::clear(None, CapSet::Ambient).map_err(|source| CapabilityError::Set {
            set: CapSet::Ambient,
            source,
        })?;
        for cap in &self.ambient {
            // The kernel refuses an ambient capability that is not both permitted and inheritable;
            // runc ignores those, and so do we.
            let _ = caps::raise(None, CapSet::Ambient, *cap);
        }
        Ok(())
    }
}
