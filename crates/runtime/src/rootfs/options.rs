//! Mount options of config.json (`["nosuid", "ro", "mode=755"]`) split into mount(2) flags,
//! propagation flags, recursive attributes (`rro`, `rnosuid`... for mount_setattr(2) with
//! AT_RECURSIVE), idmapping (`idmap`, `ridmap`) and the filesystem's data string, with the names
//! runc and mount(8) accept.

use nix::mount::MsFlags;

use crate::sys::{mount_attr, MountAttr};

/// One mount's options, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// Flags for mount(2) itself.
    pub flags: MsFlags,
    /// Propagation changes, applied one by one after the mount.
    pub propagation: Vec<MsFlags>,
    /// Options mount(2) passes to the filesystem (`mode=755,size=65536k`).
    pub data: String,
    /// Attributes set and cleared on the mount and every mount below it (`rro`, `rnoexec`...).
    pub recursive: MountAttr,
    /// `idmap` (Some(false)) or `ridmap` (Some(true), every mount below too).
    pub idmap: Option<bool>,
}

impl Options {
    pub fn is_bind(&self) -> bool {
        self.flags.contains(MsFlags::MS_BIND)
    }
}

/// The option names [`parse`] turns into flags or propagation (others go to the filesystem).
pub const KNOWN: &[&str] = &[
    "async",
    "atime",
    "bind",
    "defaults",
    "dev",
    "diratime",
    "dirsync",
    "exec",
    "idmap",
    "lazytime",
    "mand",
    "noatime",
    "nodev",
    "nodiratime",
    "noexec",
    "nolazytime",
    "nomand",
    "norelatime",
    "nostrictatime",
    "nosuid",
    "private",
    "ratime",
    "rbind",
    "rdev",
    "rdiratime",
    "rexec",
    "ridmap",
    "rnoatime",
    "rnodev",
    "rnodiratime",
    "rnoexec",
    "rnorelatime",
    "rnostrictatime",
    "rnosuid",
    "rnosymfollow",
    "relatime",
    "remount",
    "ro",
    "rprivate",
    "rrelatime",
    "rro",
    "rrw",
    "rshared",
    "rslave",
    "rstrictatime",
    "rsuid",
    "rsymfollow",
    "runbindable",
    "rw",
    "shared",
    "slave",
    "strictatime",
    "suid",
    "sync",
    "tmpcopyup",
    "unbindable",
];

/// Parses mount options; unknown names go to the data string, as mount(8) does.
pub fn parse(options: &[String]) -> Options {
    let mut out = Options {
        flags: MsFlags::empty(),
        propagation: Vec::new(),
        data: String::new(),
        recursive: MountAttr::default(),
        idmap: None,
    };
    let mut data: Vec<&str> = Vec::new();
    for opt in options {
        let (set, clear) = match opt.as_str() {
            "defaults" => (MsFlags::empty(), MsFlags::empty()),
            "ro" => (MsFlags::MS_RDONLY, MsFlags::empty()),
            "rw" => (MsFlags::empty(), MsFlags::MS_RDONLY),
            "suid" => (MsFlags::empty(), MsFlags::MS_NOSUID),
            "nosuid" => (MsFlags::MS_NOSUID, MsFlags::empty()),
            "dev" => (MsFlags::empty(), MsFlags::MS_NODEV),
            "nodev" => (MsFlags::MS_NODEV, MsFlags::empty()),
            "exec" => (MsFlags::empty(), MsFlags::MS_NOEXEC),
            "noexec" => (MsFlags::MS_NOEXEC, MsFlags::empty()),
            "sync" => (MsFlags::MS_SYNCHRONOUS, MsFlags::empty()),
            "async" => (MsFlags::empty(), MsFlags::MS_SYNCHRONOUS),
            "dirsync" => (MsFlags::MS_DIRSYNC, MsFlags::empty()),
            "remount" => (MsFlags::MS_REMOUNT, MsFlags::empty()),
            "mand" => (MsFlags::MS_MANDLOCK, MsFlags::empty()),
            "nomand" => (MsFlags::empty(), MsFlags::MS_MANDLOCK),
            "atime" => (MsFlags::empty(), MsFlags::MS_NOATIME),
            "noatime" => (MsFlags::MS_NOATIME, MsFlags::empty()),
            "diratime" => (MsFlags::empty(), MsFlags::MS_NODIRATIME),
            "nodiratime" => (MsFlags::MS_NODIRATIME, MsFlags::empty()),
            "relatime" => (MsFlags::MS_RELATIME, MsFlags::empty()),
            "norelatime" => (MsFlags::empty(), MsFlags::MS_RELATIME),
            "strictatime" => (MsFlags::MS_STRICTATIME, MsFlags::empty()),
            "nostrictatime" => (MsFlags::empty(), MsFlags::MS_STRICTATIME),
            "lazytime" => (MsFlags::MS_LAZYTIME, MsFlags::empty()),
            "nolazytime" => (MsFlags::empty(), MsFlags::MS_LAZYTIME),
            "bind" => (MsFlags::MS_BIND, MsFlags::empty()),
            "rbind" => (MsFlags::MS_BIND | MsFlags::MS_REC, MsFlags::empty()),
            "private" | "rprivate" | "shared" | "rshared" | "slave" | "rslave" | "unbindable"
            | "runbindable" => {
                out.propagation
                    .push(propagation_flag(opt).unwrap_or(MsFlags::MS_PRIVATE));
                continue;
            }
            // runc's extension: copy the image's content up into a tmpfs. Not applied yet.
            "tmpcopyup" => continue,
            "idmap" => {
                out.idmap = Some(false);
                continue;
            }
            "ridmap" => {
                out.idmap = Some(true);
                continue;
            }
            name if recursive_attr(name).is_some() => {
                if let Some((set, clear)) = recursive_attr(name) {
                    let attr = &mut out.recursive;
                    attr.attr_set = (attr.attr_set & !clear) | set;
                    attr.attr_clr = (attr.attr_clr & !set) | clear;
                }
                continue;
            }
            other => {
                data.push(other);
                continue;
            }
        };
        out.flags.insert(set);
        out.flags.remove(clear);
    }
    out.data = data.join(",");
    out
}

/// The attributes a recursive option sets and clears (runc's table). The kernel changes the
/// atime setting only as a whole: every atime option clears the whole mask and sets one.
fn recursive_attr(name: &str) -> Option<(u64, u64)> {
    use mount_attr as A;
    Some(match name {
        "rro" => (A::RDONLY, 0),
        "rrw" => (0, A::RDONLY),
        "rnosuid" => (A::NOSUID, 0),
        "rsuid" => (0, A::NOSUID),
        "rnodev" => (A::NODEV, 0),
        "rdev" => (0, A::NODEV),
        "rnoexec" => (A::NOEXEC, 0),
        "rexec" => (0, A::NOEXEC),
        "rnodiratime" => (A::NODIRATIME, 0),
        "rdiratime" => (0, A::NODIRATIME),
        "rrelatime" | "ratime" | "rnostrictatime" => (A::RELATIME, A::ATIME),
        "rnoatime" => (A::NOATIME, A::ATIME),
        "rstrictatime" | "rnorelatime" => (A::STRICTATIME, A::ATIME),
        "rnosymfollow" => (A::NOSYMFOLLOW, 0),
        "rsymfollow" => (0, A::NOSYMFOLLOW),
        _ => return None,
    })
}

/// The mount(2) flags of a propagation name (`rslave` → MS_SLAVE|MS_REC).
pub fn propagation_flag(name: &str) -> Option<MsFlags> {
    Some(match name {
        "private" => MsFlags::MS_PRIVATE,
        "rprivate" => MsFlags::MS_PRIVATE | MsFlags::MS_REC,
        "shared" => MsFlags::MS_SHARED,
        "rshared" => MsFlags::MS_SHARED | MsFlags::MS_REC,
        "slave" => MsFlags::MS_SLAVE,
        "rslave" => MsFlags::MS_SLAVE | MsFlags::MS_REC,
        "unbindable" => MsFlags::MS_UNBINDABLE,
        "runbindable" => MsFlags::MS_UNBINDABLE | MsFlags::MS_REC,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn flags_propagation_and_data() {
        let o = parse(&strings(&[
            "nosuid",
            "strictatime",
            "mode=755",
            "size=65536k",
            "rslave",
        ]));
        assert_eq!(o.flags, MsFlags::MS_NOSUID | MsFlags::MS_STRICTATIME);
        assert_eq!(o.propagation, vec![MsFlags::MS_SLAVE | MsFlags::MS_REC]);
        assert_eq!(o.data, "mode=755,size=65536k");
    }

    #[test]
    fn known_names_are_not_passed_to_the_filesystem() {
        for name in KNOWN {
            assert_eq!(parse(&strings(&[name])).data, "", "{name}");
        }
        assert_eq!(parse(&strings(&["size=1m"])).data, "size=1m");
    }

    #[test]
    fn recursive_attributes_and_idmap() {
        let o = parse(&strings(&["rbind", "rro", "rnoexec", "rnoatime", "ridmap"]));
        assert_eq!(
            o.recursive.attr_set,
            mount_attr::RDONLY | mount_attr::NOEXEC | mount_attr::NOATIME
        );
        assert_eq!(o.recursive.attr_clr, mount_attr::ATIME);
        assert_eq!(o.idmap, Some(true));
        assert_eq!(o.data, "");
        let o = parse(&strings(&["rro", "rrw", "idmap"]));
        assert_eq!(o.recursive.attr_set, 0);
        assert_eq!(o.recursive.attr_clr, mount_attr::RDONLY);
        assert_eq!(o.idmap, Some(false));
    }

    #[test]
    fn later_options_win() {
        let o = parse(&strings(&["rbind", "ro", "rw"]));
        assert!(o.is_bind() && o.flags.contains(MsFlags::MS_REC));
        assert!(!o.flags.contains(MsFlags::MS_RDONLY));
    }
}
