//! Image references as Docker parses them: `busybox`, `busybox:1.36`,
//! `localhost:5000/team/app@sha256:...`, normalised to `docker.io/library/busybox:latest` and
//! shown the short way (`busybox:latest`).
//!
//! The grammar is distribution's (`reference/regexp.go`), written out by hand: a domain when the
//! first component has a `.` or a `:` or is `localhost`, lowercase path components separated by
//! `.`, `_`, `__` or dashes, a tag of up to 128 word characters, dots and dashes, a sha256 digest.

use std::fmt;
use std::str::FromStr;

use crate::digest::Digest;

/// Docker Hub, where a name without a domain lives.
pub const DEFAULT_DOMAIN: &str = "docker.io";
const LEGACY_DOMAIN: &str = "index.docker.io";
const OFFICIAL_PREFIX: &str = "library/";
/// The tag of a reference that names none (and no digest).
pub const DEFAULT_TAG: &str = "latest";
const NAME_MAX: usize = 255;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReferenceError {
    #[error("invalid reference format")]
    Format,
    #[error("invalid reference format: repository name must be lowercase")]
    Uppercase,
    #[error("invalid reference format: repository name (including domain) must not exceed 255 characters")]
    TooLong,
    #[error("invalid reference format: {0}")]
    Digest(#[from] crate::digest::DigestError),
}

/// A normalised reference: domain, path, and a tag and/or a digest.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    domain: String,
    path: String,
    tag: Option<String>,
    digest: Option<Digest>,
}

impl Reference {
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// The repository path on its registry (`library/busybox`).
    pub fn path(&self) -> &str {
        &self.path
    }

    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }

    /// Domain and path: `docker.io/library/busybox`.
    pub fn name(&self) -> String {
        format!("{}/{}", self.domain, self.path)
    }

    /// The name the short way: `busybox`, `team/app`, `localhost:5000/app`. A Docker Hub
    /// path whose first component looks like a domain (`docker.io/a.b/c`) keeps its domain:
    /// without it the name would read as another registry's (Docker shows `a.b/c`).
    pub fn familiar_name(&self) -> String {
        if self.domain != DEFAULT_DOMAIN {
            return self.name();
        }
        let short = self
            .path
            .strip_prefix(OFFICIAL_PREFIX)
            .filter(|rest| !rest.contains('/'))
            .unwrap_or(&self.path);
        if starts_with_domain(short) {
            self.name()
        } else {
            short.to_string()
        }
    }

    /// The whole reference the short way: `busybox:latest`, `app@sha256:...`.
    pub fn familiar(&self) -> String {
        self.with_suffix(self.familiar_name())
    }

    /// This reference with another tag (and no digest).
    pub fn with_tag(&self, tag: &str) -> Result<Reference, ReferenceError> {
        if !valid_tag(tag) {
            return Err(ReferenceError::Format);
        }
        Ok(Reference {
            tag: Some(tag.to_string()),
            digest: None,
            ..self.clone()
        })
    }

    /// This reference pinned to `digest` (the tag kept).
    pub fn with_digest(&self, digest: Digest) -> Reference {
        Reference {
            digest: Some(digest),
            ..self.clone()
        }
    }

    fn with_suffix(&self, mut name: String) -> String {
        if let Some(tag) = &self.tag {
            name.push(':');
            name.push_str(tag);
        }
        if let Some(digest) = &self.digest {
            name.push('@');
            name.push_str(&digest.to_string());
        }
        name
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.with_suffix(self.name()))
    }
}

impl FromStr for Reference {
    type Err = ReferenceError;

    /// Parses and normalises, as Docker's `ParseNormalizedNamed` + `TagNameOnly` do.
    fn from_str(s: &str) -> Result<Reference, ReferenceError> {
        let (rest, digest) = match s.split_once('@') {
            Some((rest, d)) => (rest, Some(d.parse::<Digest>()?)),
            None => (s, None),
        };
        // A tag follows the last ':' after the last '/' (a ':' before it is a port).
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => (&rest[..last_slash + i], Some(&rest[last_slash + i + 1..])),
            None => (rest, None),
        };
        if let Some(tag) = tag {
            if !valid_tag(tag) {
                return Err(ReferenceError::Format);
            }
        }
        if name.is_empty() {
            return Err(ReferenceError::Format);
        }
        let (domain, path) = split_domain(name);
        if !valid_domain(&domain) {
            return Err(ReferenceError::Format);
        }
        if path.chars().any(|c| c.is_ascii_uppercase()) {
            return Err(ReferenceError::Uppercase);
        }
        if !path.split('/').all(valid_component) {
            return Err(ReferenceError::Format);
        }
        if domain.len() + 1 + path.len() > NAME_MAX {
            return Err(ReferenceError::TooLong);
        }
        let tag = match (tag, &digest) {
            (Some(t), _) => Some(t.to_string()),
            (None, None) => Some(DEFAULT_TAG.to_string()),
            (None, Some(_)) => None,
        };
        Ok(Reference {
            domain,
            path,
            tag,
            digest,
        })
    }
}

/// Whether the first of `name`'s components (when it has several) is a domain: it holds a `.`
/// or a `:`, or is `localhost`.
fn starts_with_domain(name: &str) -> bool {
    name.split_once('/').is_some_and(|(first, _)| {
        first.contains('.') || first.contains(':') || first == "localhost"
    })
}

/// Splits `name` into domain and path, adding Docker Hub's domain and `library/` as Docker does.
fn split_domain(name: &str) -> (String, String) {
    let (domain, path) = match name.split_once('/') {
        Some((first, rest)) if starts_with_domain(name) => (first.to_string(), rest.to_string()),
        _ => (DEFAULT_DOMAIN.to_string(), name.to_string()),
    };
    let domain = if domain == LEGACY_DOMAIN {
        DEFAULT_DOMAIN.to_string()
    } else {
        domain
    };
    let path = if domain == DEFAULT_DOMAIN && !path.contains('/') {
        format!("{OFFICIAL_PREFIX}{path}")
    } else {
        path
    };
    (domain, path)
}

/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`
fn valid_component(c: &str) -> bool {
    let bytes = c.as_bytes();
    if bytes.is_empty() || !is_alnum(bytes[0]) || !is_alnum(bytes[bytes.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < bytes.len() {
        if is_alnum(bytes[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && !is_alnum(bytes[i]) {
            i += 1;
        }
        let sep = bytes.get(start..i).unwrap_or_default();
        let ok = sep == b"." || sep == b"_" || sep == b"__" || sep.iter().all(|&b| b == b'-');
        if !ok {
            return false;
        }
    }
    true
}

fn is_alnum(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

/// `[\w][\w.-]{0,127}`
fn valid_tag(t: &str) -> bool {
    let word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut chars = t.chars();
    matches!(chars.next(), Some(c) if word(c))
        && t.len() <= 128
        && chars.all(|c| word(c) || c == '.' || c == '-')
}

/// `host[:port]`, host being dot-separated labels or a bracketed IPv6 address.
fn valid_domain(d: &str) -> bool {
    let (host, port) = if let Some(rest) = d.strip_prefix('[') {
        match rest.split_once(']') {
            Some((v6, after)) => {
                if v6.is_empty() || !v6.chars().all(|c| c.is_ascii_hexdigit() || c == ':') {
                    return false;
                }
                ("v6", after.strip_prefix(':'))
            }
            None => return false,
        }
    } else {
        match d.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (d, None),
        }
    };
    if let Some(port) = port {
        if port.is_empty() || !port.chars().all(|c| c.is_ascii_digit()) {
            return false;
        }
    }
    host == "v6"
        || host.split('.').all(|label| {
            let b = label.as_bytes();
            !b.is_empty()
                && b[0].is_ascii_alphanumeric()
                && b[b.len() - 1].is_ascii_alphanumeric()
                && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    fn norm(s: &str) -> String {
        s.parse::<Reference>().unwrap().to_string()
    }

    #[test]
    fn normalises_like_docker() {
        assert_eq!(norm("busybox"), "docker.io/library/busybox:latest");
        assert_eq!(norm("busybox:1.36"), "docker.io/library/busybox:1.36");
        assert_eq!(norm("team/app"), "docker.io/team/app:latest");
        assert_eq!(
            norm("index.docker.io/library/busybox"),
            "docker.io/library/busybox:latest"
        );
        assert_eq!(norm("localhost/app"), "localhost/app:latest");
        assert_eq!(
            norm("localhost:5000/team/app:v1"),
            "localhost:5000/team/app:v1"
        );
        assert_eq!(
            norm(&format!("localhost:5000/team/app@{D}")),
            format!("localhost:5000/team/app@{D}")
        );
        assert_eq!(
            norm(&format!("busybox:1.36@{D}")),
            format!("docker.io/library/busybox:1.36@{D}")
        );
        assert_eq!(
            norm("registry.example.com/a/b/c"),
            "registry.example.com/a/b/c:latest"
        );
        assert_eq!(norm("[::1]:5000/app"), "[::1]:5000/app:latest");
        assert_eq!(norm("a__b/c-d--e.f_g"), "docker.io/a__b/c-d--e.f_g:latest");
    }

    #[test]
    fn familiar_form() {
        let r: Reference = "docker.io/library/busybox:latest".parse().unwrap();
        assert_eq!(r.familiar(), "busybox:latest");
        assert_eq!(r.familiar_name(), "busybox");
        let r: Reference = "team/app:v2".parse().unwrap();
        assert_eq!(r.familiar(), "team/app:v2");
        let r: Reference = "localhost:5000/app".parse().unwrap();
        assert_eq!(r.familiar(), "localhost:5000/app:latest");
        assert_eq!(r.domain(), "localhost:5000");
        assert_eq!(r.path(), "app");
        let r: Reference = format!("busybox@{D}").parse().unwrap();
        assert_eq!(r.tag(), None);
        assert_eq!(r.familiar(), format!("busybox@{D}"));
    }

    #[test]
    fn familiar_forms_read_back_as_the_same_reference() {
        // Found by the reference fuzz target: without docker.io, the first component would
        // be read as a registry.
        for (text, familiar) in [
            (
                "index.docker.io/lindex.docker.io/library/ibrary/busybox",
                "docker.io/lindex.docker.io/library/ibrary/busybox:latest",
            ),
            ("docker.io/a.b/c", "docker.io/a.b/c:latest"),
            ("docker.io/localhost/c:1", "docker.io/localhost/c:1"),
            ("docker.io/library/a.b", "a.b:latest"),
            ("docker.io/library/x/y", "library/x/y:latest"),
        ] {
            let r: Reference = text.parse().unwrap();
            assert_eq!(r.familiar(), familiar, "{text}");
            assert_eq!(r.familiar().parse::<Reference>().unwrap(), r, "{text}");
        }
    }

    #[test]
    fn rejects_what_docker_rejects() {
        assert_eq!(
            "Busybox".parse::<Reference>(),
            Err(ReferenceError::Uppercase)
        );
        for bad in [
            "",
            ":tag",
            "busybox:",
            "busybox:-x",
            "a//b",
            "-a",
            "a-",
            "a..b",
            "busybox@sha256:12",
            "UPPER.com:x:y/app",
            "host:port/app",
            "a/b:c/d",
            "busybox:tag@",
            "we ird",
        ] {
            assert!(bad.parse::<Reference>().is_err(), "{bad:?} accepted");
        }
        let long = format!("a/{}", "b".repeat(260));
        assert_eq!(long.parse::<Reference>(), Err(ReferenceError::TooLong));
        assert!(format!("busybox:{}", "t".repeat(129))
            .parse::<Reference>()
            .is_err());
    }

    #[test]
    fn retag_and_pin() {
        let r: Reference = "busybox".parse().unwrap();
        assert_eq!(
            r.with_tag("1.36").unwrap().to_string(),
            "docker.io/library/busybox:1.36"
        );
        assert!(r.with_tag("bad tag").is_err());
        let pinned = r.with_digest(D.parse().unwrap());
        assert_eq!(
            pinned.to_string(),
            format!("docker.io/library/busybox:latest@{D}")
        );
    }
}
