//! What a profile's `includes`/`excludes` compare with: the host's architecture and kernel.

/// The host as a Docker profile sees it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Host {
    /// libseccomp's name of the architecture (`amd64`, `arm64`...): `arches` of a filter.
    pub arch: &'static str,
    /// The `SCMP_ARCH_*` name: the `archMap` entry to take.
    pub scmp_arch: &'static str,
    /// The running kernel's version; None if `uname` said something unreadable (then a rule
    /// with `minKernel` is an error, as in Docker).
    pub kernel: Option<KernelVersion>,
}

/// A kernel's version as Docker compares it: `<kernel>.<major>`, the rest ignored
/// (`6.1.0-18-amd64` is 6.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct KernelVersion {
    pub kernel: u32,
    pub major: u32,
}

impl KernelVersion {
    /// Parses the leading `<kernel>.<major>` of a release string (`5.10`, `6.18.44-fc`...).
    pub(crate) fn parse(release: &str) -> Option<KernelVersion> {
        let (kernel, rest) = release.split_once('.')?;
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        Some(KernelVersion {
            kernel: kernel.parse().ok()?,
            major: rest.get(..digits)?.parse().ok()?,
        })
    }
}

impl Host {
    /// This machine.
    /// This machine, read once.
    pub(crate) fn current() -> &'static Host {
        static HOST: std::sync::OnceLock<Host> = std::sync::OnceLock::new();
        HOST.get_or_init(|| {
            let (arch, scmp_arch) = native();
            let uname = rustix::system::uname();
            let kernel = uname.release().to_str().ok().and_then(KernelVersion::parse);
            Host {
                arch,
                scmp_arch,
                kernel,
            }
        })
    }
}

/// The build target's architecture, by libseccomp's and by the `SCMP_ARCH_*` name.
fn native() -> (&'static str, &'static str) {
    if cfg!(target_arch = "x86_64") {
        ("amd64", "SCMP_ARCH_X86_64")
    } else if cfg!(target_arch = "aarch64") {
        ("arm64", "SCMP_ARCH_AARCH64")
    } else if cfg!(target_arch = "riscv64") {
        ("riscv64", "SCMP_ARCH_RISCV64")
    } else if cfg!(target_arch = "s390x") {
        ("s390x", "SCMP_ARCH_S390X")
    } else if cfg!(all(target_arch = "powerpc64", target_endian = "little")) {
        ("ppc64le", "SCMP_ARCH_PPC64LE")
    } else if cfg!(target_arch = "loongarch64") {
        ("loong64", "SCMP_ARCH_LOONGARCH64")
    } else if cfg!(target_arch = "x86") {
        ("x86", "SCMP_ARCH_X86")
    } else if cfg!(target_arch = "arm") {
        ("arm", "SCMP_ARCH_ARM")
    } else {
        ("", "SCMP_ARCH_NATIVE")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_versions_parse_as_docker_reads_them() {
        let v = |kernel, major| Some(KernelVersion { kernel, major });
        assert_eq!(KernelVersion::parse("4.8"), v(4, 8));
        assert_eq!(KernelVersion::parse("6.18.44-fc-v1272"), v(6, 18));
        assert_eq!(KernelVersion::parse("3.12-1-amd64"), v(3, 12));
        assert_eq!(KernelVersion::parse("5"), None);
        assert_eq!(KernelVersion::parse("five.1"), None);
        assert_eq!(KernelVersion::parse("5.x"), None);
        assert!(v(5, 10) > v(5, 9) && v(6, 0) > v(5, 10));
        assert!(Host::current().kernel.is_some());
    }
}
