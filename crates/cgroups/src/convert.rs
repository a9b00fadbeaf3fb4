//! Pure conversions from OCI values to the strings cgroup files take, with
//! the same arithmetic runc uses (shares→cpu.weight, blkio weight→io.weight,
//! memory+swap→memory.swap.max), plus validation of values that end up in
//! file names or device rules.

use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType};

/// An OCI value that cannot be turned into a cgroup setting.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConvertError {
    /// `memory.swap` set without a usable `memory.limit`.
    #[error("memory.swap ({swap}) needs memory.limit to be set to a positive value (got {limit})")]
    SwapWithoutLimit {
        /// The requested memory+swap.
        swap: i64,
        /// The requested memory limit.
        limit: i64,
    },
    /// `memory.swap` below `memory.limit`: swap is memory+swap.
    #[error("memory.swap ({swap}) is memory+swap and must be >= memory.limit ({limit})")]
    SwapBelowLimit {
        /// The requested memory+swap.
        swap: i64,
        /// The requested memory limit.
        limit: i64,
    },
    /// `memory.swappiness` above 100.
    #[error("memory.swappiness {0} is out of range (0-100)")]
    Swappiness(u64),
    /// A device rule the devices controller cannot express.
    #[error("device rule {rule:?}: {reason}")]
    DeviceRule {
        /// The rule as given.
        rule: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// A hugepage size that is not of the form `<n>KB|MB|GB`.
    #[error("hugepageLimits: invalid page size {0:?} (expected e.g. \"2MB\" or \"1GB\")")]
    PageSize(String),
    /// A `unified` key that is not a plain cgroup file name.
    #[error("unified: invalid key {0:?} (must be a cgroup file name like \"memory.high\")")]
    UnifiedKey(String),
}

/// cgroup v1 `cpu.shares` to v2 `cpu.weight`: `1 + ((shares-2)*9999)/262142`,
/// shares clamped to the v1 range 2..=262144; 0 means unset.
pub fn shares_to_weight(shares: u64) -> u64 {
    if shares == 0 {
        return 0;
    }
    let shares = shares.clamp(2, 262_144);
    1 + ((shares - 2) * 9999) / 262_142
}

/// blkio weight (10..=1000) to io.weight (1..=10000): `1 + (w-10)*9999/990`;
/// 0 means unset.
pub fn blkio_weight_to_io_weight(weight: u16) -> u64 {
    if weight == 0 {
        return 0;
    }
    let w = u64::from(weight.clamp(10, 1000));
    1 + ((w - 10) * 9999) / 990
}

/// A v2 limit: 0 is unset (`None`), negative is `max`.
pub fn limit_to_v2(value: i64) -> Option<String> {
    match value {
        0 => None,
        v if v < 0 => Some("max".to_string()),
        v => Some(v.to_string()),
    }
}

/// OCI memory+swap to v2 `memory.swap.max` (swap only), as runc does:
/// unlimited memory with unset swap means unlimited swap; `swap == limit`
/// means no swap at all.
pub fn swap_to_v2(swap: i64, limit: i64) -> Result<Option<String>, ConvertError> {
    if limit == -1 && swap == 0 {
        return Ok(Some("max".to_string()));
    }
    if swap == 0 {
        return Ok(None);
    }
    if swap < 0 {
        return Ok(Some("max".to_string()));
    }
    if limit <= 0 {
        return Err(ConvertError::SwapWithoutLimit { swap, limit });
    }
    if swap < limit {
        return Err(ConvertError::SwapBelowLimit { swap, limit });
    }
    Ok(Some((swap - limit).to_string()))
}

/// Checks `memory.swappiness`.
pub fn swappiness(value: u64) -> Result<String, ConvertError> {
    if value > 100 {
        return Err(ConvertError::Swappiness(value));
    }
    Ok(value.to_string())
}

/// A validated OCI device rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceRule {
    /// Allow (true) or deny.
    pub allow: bool,
    /// `None` for all devices (type `a`), else the device kind.
    pub device: Option<DeviceMatch>,
    /// Some of `r`, `w`, `m` (never empty).
    pub access: String,
}

/// Which devices a non-`a` rule matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceMatch {
    /// `b` or `c`.
    pub kind: char,
    /// `None` is `*`.
    pub major: Option<u32>,
    /// `None` is `*`.
    pub minor: Option<u32>,
}

/// Checks an OCI device rule: type a/b/c (u = c), access of r/w/m (empty
/// or absent = rwm), negative or absent numbers = `*`.
pub fn parse_device_rule(rule: &LinuxDeviceCgroup) -> Result<DeviceRule, ConvertError> {
    let bad = |reason| ConvertError::DeviceRule {
        rule: rule.to_string(),
        reason,
    };
    let access = rule.access().as_deref().unwrap_or("rwm");
    let access = if access.is_empty() { "rwm" } else { access };
    if !access.chars().all(|c| matches!(c, 'r' | 'w' | 'm')) {
        return Err(bad("access must be made of r, w and m"));
    }
    let kind = match rule.typ().unwrap_or(LinuxDeviceType::A) {
        LinuxDeviceType::A => {
            if rule.major().is_some_and(|n| n >= 0) || rule.minor().is_some_and(|n| n >= 0) {
                return Err(bad("type \"a\" takes no major/minor"));
            }
            return Ok(DeviceRule {
                allow: rule.allow(),
                device: None,
                access: access.to_string(),
            });
        }
        LinuxDeviceType::B => 'b',
        LinuxDeviceType::C | LinuxDeviceType::U => 'c',
        LinuxDeviceType::P => return Err(bad("FIFOs (type \"p\") are not device-controlled")),
    };
    let num = |n: Option<i64>| match n {
        Some(n) if n >= 0 => u32::try_from(n)
            .map(Some)
            .map_err(|_| bad("device number out of range")),
        _ => Ok(None),
    };
    Ok(DeviceRule {
        allow: rule.allow(),
        device: Some(DeviceMatch {
            kind,
            major: num(rule.major())?,
            minor: num(rule.minor())?,
        }),
        access: access.to_string(),
    })
}

/// A v1 device rule: which file (`devices.allow` / `devices.deny`) and the
/// line to write (`c 1:3 rwm`, or `a` for all devices).
pub fn device_rule(rule: &LinuxDeviceCgroup) -> Result<(&'static str, String), ConvertError> {
    let rule = parse_device_rule(rule)?;
    let file = if rule.allow {
        "devices.allow"
    } else {
        "devices.deny"
    };
    let Some(dev) = rule.device else {
        return Ok((file, "a".to_string()));
    };
    let num = |n: Option<u32>| n.map_or_else(|| "*".to_string(), |n| n.to_string());
    Ok((
        file,
        format!(
            "{} {}:{} {}",
            dev.kind,
            num(dev.major),
            num(dev.minor),
            rule.access
        ),
    ))
}

/// Checks an OCI hugepage size (`2MB`, `1GB`, `64KB`) before it is used
/// in a file name.
pub fn page_size(size: &str) -> Result<&str, ConvertError> {
    let digits = size
        .strip_suffix("KB")
        .or_else(|| size.strip_suffix("MB"))
        .or_else(|| size.strip_suffix("GB"));
    match digits {
        Some(d) if !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()) => Ok(size),
        _ => Err(ConvertError::PageSize(size.to_string())),
    }
}

/// Checks a `unified` key: a bare file name, not a path.
pub fn unified_key(key: &str) -> Result<&str, ConvertError> {
    if key.is_empty() || key.contains('/') || key.starts_with('.') || !key.contains('.') {
        return Err(ConvertError::UnifiedKey(key.to_string()));
    }
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::LinuxDeviceCgroupBuilder;

    #[test]
    fn shares_to_weight_matches_runc() {
        assert_eq!(shares_to_weight(0), 0);
        assert_eq!(shares_to_weight(2), 1);
        assert_eq!(shares_to_weight(1024), 39);
        assert_eq!(shares_to_weight(512), 20);
        assert_eq!(shares_to_weight(262_144), 10_000);
        assert_eq!(shares_to_weight(1), 1);
        assert_eq!(shares_to_weight(u64::MAX), 10_000);
    }

    #[test]
    fn blkio_weight_conversion() {
        assert_eq!(blkio_weight_to_io_weight(0), 0);
        assert_eq!(blkio_weight_to_io_weight(10), 1);
        assert_eq!(blkio_weight_to_io_weight(500), 4950);
        assert_eq!(blkio_weight_to_io_weight(1000), 10_000);
    }

    #[test]
    fn swap_conversion() {
        assert_eq!(swap_to_v2(0, 100), Ok(None));
        assert_eq!(swap_to_v2(0, -1), Ok(Some("max".into())));
        assert_eq!(swap_to_v2(-1, 100), Ok(Some("max".into())));
        assert_eq!(swap_to_v2(300, 100), Ok(Some("200".into())));
        assert_eq!(swap_to_v2(100, 100), Ok(Some("0".into())));
        assert!(swap_to_v2(50, 100).is_err());
        assert!(swap_to_v2(50, 0).is_err());
        assert_eq!(limit_to_v2(-1).as_deref(), Some("max"));
        assert_eq!(limit_to_v2(0), None);
        assert_eq!(limit_to_v2(42).as_deref(), Some("42"));
    }

    #[test]
    fn device_rules() {
        let deny_all = LinuxDeviceCgroupBuilder::default()
            .allow(false)
            .access("rwm")
            .build()
            .expect("rule");
        assert_eq!(
            device_rule(&deny_all),
            Ok(("devices.deny", "a".to_string()))
        );
        let null = LinuxDeviceCgroupBuilder::default()
            .allow(true)
            .typ(LinuxDeviceType::C)
            .major(1)
            .minor(3)
            .access("rw")
            .build()
            .expect("rule");
        assert_eq!(
            device_rule(&null),
            Ok(("devices.allow", "c 1:3 rw".to_string()))
        );
        let any_block = LinuxDeviceCgroupBuilder::default()
            .allow(true)
            .typ(LinuxDeviceType::B)
            .build()
            .expect("rule");
        assert_eq!(
            device_rule(&any_block),
            Ok(("devices.allow", "b *:* rwm".to_string()))
        );
        let bad = LinuxDeviceCgroupBuilder::default()
            .allow(true)
            .typ(LinuxDeviceType::C)
            .access("rwx")
            .build()
            .expect("rule");
        assert!(device_rule(&bad).is_err());
    }

    #[test]
    fn page_sizes() {
        assert_eq!(page_size("2MB"), Ok("2MB"));
        assert!(page_size("../2MB").is_err());
        assert!(page_size("MB").is_err());
    }

    #[test]
    fn unified_keys() {
        assert!(unified_key("memory.high").is_ok());
        assert!(unified_key("../memory.high").is_err());
        assert!(unified_key("cgroup").is_err());
        assert_eq!(swappiness(60), Ok("60".to_string()));
        assert!(swappiness(101).is_err());
    }
}
