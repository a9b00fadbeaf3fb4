//! Platforms (`os/arch[/variant]`, containerd's normalisation), the
//! predefined platform build args, and the proxy args Docker allows
//! without an `ARG` and never writes to the image history.

use std::fmt;

/// Errors of this module.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlatformError {
    #[error("{0:?}: invalid platform specifier")]
    Invalid(String),
    #[error("{0:?}: unknown operating system or architecture: invalid argument")]
    Unknown(String),
}

/// An OCI platform.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    /// Empty when none.
    pub variant: String,
}

impl Default for Platform {
    /// `linux/amd64`.
    fn default() -> Platform {
        Platform::new("linux", "amd64", "")
    }
}

impl fmt::Display for Platform {
    /// `os/arch` or `os/arch/variant`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if !self.variant.is_empty() {
            write!(f, "/{}", self.variant)?;
        }
        Ok(())
    }
}

const KNOWN_OS: [&str; 17] = [
    "aix",
    "android",
    "darwin",
    "dragonfly",
    "freebsd",
    "hurd",
    "illumos",
    "ios",
    "js",
    "linux",
    "nacl",
    "netbsd",
    "openbsd",
    "plan9",
    "solaris",
    "windows",
    "zos",
];

const KNOWN_ARCH: [&str; 30] = [
    "386",
    "amd64",
    "amd64p32",
    "arm",
    "armbe",
    "arm64",
    "arm64be",
    "ppc64",
    "ppc64le",
    "loong64",
    "mips",
    "mipsle",
    "mips64",
    "mips64le",
    "mips64p32",
    "mips64p32le",
    "ppc",
    "riscv",
    "riscv64",
    "s390",
    "s390x",
    "sparc",
    "sparc64",
    "wasm", // aliases normalised below
    "i386",
    "x86_64",
    "x86-64",
    "aarch64",
    "armhf",
    "armel",
];

fn normalize_os(os: &str) -> String {
    match os {
        "macos" => "darwin".to_string(),
        other => other.to_string(),
    }
}

fn normalize_arch(arch: &str, variant: &str) -> (String, String) {
    let (a, v) = match (arch, variant) {
        ("i386", _) => ("386", ""),
        ("x86_64" | "x86-64" | "amd64", "v1") => ("amd64", ""),
        ("x86_64" | "x86-64" | "amd64", v) => ("amd64", v),
        ("aarch64" | "arm64", "8" | "v8" | "v8.0") => ("arm64", ""),
        ("aarch64" | "arm64", v) => ("arm64", v),
        ("armhf", _) => ("arm", "v7"),
        ("armel", _) => ("arm", "v6"),
        ("arm", "" | "7") => ("arm", "v7"),
        ("arm", "5") => ("arm", "v5"),
        ("arm", "6") => ("arm", "v6"),
        ("arm", "8") => ("arm", "v8"),
        (a, v) => (a, v),
    };
    (a.to_string(), v.to_string())
}

impl Platform {
    pub fn new(os: &str, architecture: &str, variant: &str) -> Platform {
        Platform {
            os: os.to_string(),
            architecture: architecture.to_string(),
            variant: variant.to_string(),
        }
    }

    /// The platform this program was built for.
    pub fn host() -> Platform {
        let arch = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "x86" => "386",
            "aarch64" => "arm64",
            "powerpc64" if cfg!(target_endian = "little") => "ppc64le",
            "powerpc64" => "ppc64",
            "loongarch64" => "loong64",
            other => other,
        };
        let (architecture, variant) = normalize_arch(arch, "");
        Platform {
            os: std::env::consts::OS.to_string(),
            architecture,
            variant,
        }
    }

    /// Parses `os`, `arch`, `os/arch` or `os/arch/variant`, normalising
    /// aliases (`x86_64` → `amd64`, `aarch64` → `arm64`, `armhf` →
    /// `arm/v7`...). A lone OS takes the host's architecture; a lone
    /// architecture means Linux.
    pub fn parse(spec: &str) -> Result<Platform, PlatformError> {
        let lower = spec.to_ascii_lowercase();
        let parts: Vec<&str> = lower.split('/').collect();
        let valid_part = |p: &&str| {
            !p.is_empty()
                && p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
        };
        if !parts.iter().all(valid_part) {
            return Err(PlatformError::Invalid(spec.to_string()));
        }
        match parts.as_slice() {
            [one] => {
                if KNOWN_OS.contains(one) {
                    let host = Platform::host();
                    return Ok(Platform {
                        os: (*one).to_string(),
                        ..host
                    });
                }
                if KNOWN_ARCH.contains(one) {
                    let (architecture, variant) = normalize_arch(one, "");
                    return Ok(Platform {
                        os: "linux".to_string(),
                        architecture,
                        variant,
                    });
                }
                Err(PlatformError::Unknown(spec.to_string()))
            }
            [os, arch] => {
                let (architecture, mut variant) = normalize_arch(arch, "");
                if architecture == "arm" && variant == "v7" {
                    variant.clear();
                }
                Ok(Platform {
                    os: normalize_os(os),
                    architecture,
                    variant,
                })
            }
            [os, arch, variant] => {
                let (architecture, mut variant) = normalize_arch(arch, variant);
                if architecture == "arm64" && variant.is_empty() {
                    variant = "v8".to_string();
                }
                Ok(Platform {
                    os: normalize_os(os),
                    architecture,
                    variant,
                })
            }
            _ => Err(PlatformError::Invalid(spec.to_string())),
        }
    }
}

/// Names of the automatic platform args, in the order [`platform_args`]
/// gives them.
pub const PLATFORM_ARGS: [&str; 8] = [
    "BUILDPLATFORM",
    "BUILDOS",
    "BUILDARCH",
    "BUILDVARIANT",
    "TARGETPLATFORM",
    "TARGETOS",
    "TARGETARCH",
    "TARGETVARIANT",
];

/// The predefined platform args for a build on `build` producing `target`.
pub fn platform_args(build: &Platform, target: &Platform) -> Vec<(String, String)> {
    let mut out = Vec::with_capacity(8);
    for (prefix, p) in [("BUILD", build), ("TARGET", target)] {
        out.push((format!("{prefix}PLATFORM"), p.to_string()));
        out.push((format!("{prefix}OS"), p.os.clone()));
        out.push((format!("{prefix}ARCH"), p.architecture.clone()));
        out.push((format!("{prefix}VARIANT"), p.variant.clone()));
    }
    out
}

/// Build args usable without an `ARG` and kept out of the image history.
pub const PROXY_ARGS: [&str; 10] = [
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "FTP_PROXY",
    "ftp_proxy",
    "NO_PROXY",
    "no_proxy",
    "ALL_PROXY",
    "all_proxy",
];

/// Whether `name` is one of [`PROXY_ARGS`] (case-sensitive, as Docker).
pub fn is_proxy_arg(name: &str) -> bool {
    PROXY_ARGS.contains(&name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> String {
        Platform::parse(s).unwrap().to_string()
    }

    #[test]
    fn parse_and_normalise() {
        assert_eq!(p("linux/amd64"), "linux/amd64");
        assert_eq!(p("Linux/x86_64"), "linux/amd64");
        assert_eq!(p("linux/aarch64"), "linux/arm64");
        assert_eq!(p("linux/arm64/v8"), "linux/arm64/v8");
        assert_eq!(p("linux/arm64/8"), "linux/arm64/v8");
        assert_eq!(p("linux/arm64/v9"), "linux/arm64/v9");
        assert_eq!(p("linux/arm"), "linux/arm");
        assert_eq!(p("linux/arm/v6"), "linux/arm/v6");
        assert_eq!(p("linux/arm/7"), "linux/arm/v7");
        assert_eq!(p("linux/armhf"), "linux/arm");
        assert_eq!(p("linux/armhf/v7"), "linux/arm/v7");
        assert_eq!(p("linux/armel"), "linux/arm/v6");
        assert_eq!(p("linux/i386"), "linux/386");
        assert_eq!(p("linux/amd64/v1"), "linux/amd64");
        assert_eq!(p("linux/amd64/v3"), "linux/amd64/v3");
        assert_eq!(p("arm64"), "linux/arm64");
        assert_eq!(p("windows/amd64"), "windows/amd64");
        assert_eq!(Platform::parse("linux").unwrap().os, "linux");
    }

    #[test]
    fn parse_errors() {
        assert_eq!(
            Platform::parse("linux/").unwrap_err().to_string(),
            "\"linux/\": invalid platform specifier"
        );
        assert!(matches!(
            Platform::parse("a/b/c/d"),
            Err(PlatformError::Invalid(_))
        ));
        assert!(matches!(
            Platform::parse("lin ux/amd64"),
            Err(PlatformError::Invalid(_))
        ));
        assert_eq!(
            Platform::parse("toaster").unwrap_err().to_string(),
            "\"toaster\": unknown operating system or architecture: invalid argument"
        );
    }

    #[test]
    fn defaults_and_host() {
        assert_eq!(Platform::default().to_string(), "linux/amd64");
        let h = Platform::host();
        assert!(!h.os.is_empty() && !h.architecture.is_empty());
        assert_ne!(h.architecture, "x86_64");
        assert_ne!(h.architecture, "aarch64");
    }

    #[test]
    fn predefined_args() {
        let build = Platform::default();
        let target = Platform::parse("linux/arm/v7").unwrap();
        let args = platform_args(&build, &target);
        let get = |k: &str| args.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("BUILDPLATFORM"), Some("linux/amd64"));
        assert_eq!(get("BUILDVARIANT"), Some(""));
        assert_eq!(get("TARGETPLATFORM"), Some("linux/arm/v7"));
        assert_eq!(get("TARGETOS"), Some("linux"));
        assert_eq!(get("TARGETARCH"), Some("arm"));
        assert_eq!(get("TARGETVARIANT"), Some("v7"));
        let names: Vec<&str> = args.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, PLATFORM_ARGS);
    }

    #[test]
    fn proxy_args() {
        assert!(is_proxy_arg("HTTP_PROXY"));
        assert!(is_proxy_arg("no_proxy"));
        assert!(is_proxy_arg("all_proxy"));
        assert!(!is_proxy_arg("Http_Proxy"));
        assert!(!is_proxy_arg("PROXY"));
        assert_eq!(PROXY_ARGS.len(), 10);
    }
}
