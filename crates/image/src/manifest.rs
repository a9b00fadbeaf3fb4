//! Manifests: OCI image manifests and indexes, Docker schema 2 manifests and manifest lists
//! (the same JSON shapes under other media types), and choosing a platform from an index.

use oci_spec::image::{Descriptor, ImageIndex, ImageManifest};

/// Media types of manifests this store understands.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// What a registry client sends in `Accept` to get any of them.
pub const ACCEPT: &[&str] = &[
    OCI_INDEX,
    OCI_MANIFEST,
    DOCKER_MANIFEST_LIST,
    DOCKER_MANIFEST,
];

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("unsupported manifest media type {0:?}")]
    MediaType(String),
    #[error("invalid manifest ({media_type}): {source}")]
    Json {
        media_type: String,
        source: serde_json::Error,
    },
    #[error("no matching manifest for {0} in the manifest list entries")]
    NoMatch(Platform),
    #[error("invalid platform {0:?}: expected os/arch[/variant]")]
    Platform(String),
}

/// A parsed manifest: one image, or an index of images per platform.
#[derive(Debug, Clone)]
pub enum Manifest {
    Image(Box<ImageManifest>),
    Index(Box<ImageIndex>),
}

/// Parses `bytes` as the manifest kind `media_type` names; without one (an OCI layout, a file),
/// the JSON's own `mediaType` decides, and an index is told by its `manifests` field.
pub fn parse(media_type: Option<&str>, bytes: &[u8]) -> Result<Manifest, ManifestError> {
    let media_type = match media_type.filter(|m| !m.is_empty()) {
        Some(m) => m.split(';').next().unwrap_or(m).trim().to_string(),
        None => sniff(bytes),
    };
    let json = |source| ManifestError::Json {
        media_type: media_type.clone(),
        source,
    };
    match media_type.as_str() {
        OCI_MANIFEST | DOCKER_MANIFEST => serde_json::from_slice(bytes)
            .map(|m| Manifest::Image(Box::new(m)))
            .map_err(json),
        OCI_INDEX | DOCKER_MANIFEST_LIST => serde_json::from_slice(bytes)
            .map(|i| Manifest::Index(Box::new(i)))
            .map_err(json),
        other => Err(ManifestError::MediaType(other.to_string())),
    }
}

fn sniff(bytes: &[u8]) -> String {
    let value: serde_json::Value = serde_json::from_slice(bytes).unwrap_or_default();
    match value.get("mediaType").and_then(|m| m.as_str()) {
        Some(m) => m.to_string(),
        None if value.get("manifests").is_some() => OCI_INDEX.to_string(),
        None => OCI_MANIFEST.to_string(),
    }
}

/// An os/architecture/variant triple, as `--platform` takes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    pub variant: Option<String>,
}

impl Platform {
    /// The platform of this machine, in Go's names (amd64, arm64...).
    pub fn host() -> Platform {
        let architecture = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            "x86" => "386",
            "powerpc64" => "ppc64le",
            other => other,
        };
        Platform {
            os: "linux".to_string(),
            architecture: architecture.to_string(),
            variant: None,
        }
    }

    /// Parses `linux/amd64` or `linux/arm/v7`.
    pub fn parse(s: &str) -> Result<Platform, ManifestError> {
        let parts: Vec<&str> = s.split('/').collect();
        match parts.as_slice() {
            [os, arch] if !os.is_empty() && !arch.is_empty() => Ok(Platform {
                os: os.to_string(),
                architecture: arch.to_string(),
                variant: None,
            }),
            [os, arch, variant] if !os.is_empty() && !arch.is_empty() && !variant.is_empty() => {
                Ok(Platform {
                    os: os.to_string(),
                    architecture: arch.to_string(),
                    variant: Some(variant.to_string()),
                })
            }
            _ => Err(ManifestError::Platform(s.to_string())),
        }
    }

    fn matches(&self, d: &Descriptor) -> bool {
        let Some(p) = d.platform() else {
            return false;
        };
        p.os().to_string() == self.os
            && p.architecture().to_string() == self.architecture
            && match &self.variant {
                Some(v) => p.variant().as_deref() == Some(v.as_str()),
                None => true,
            }
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

/// The entry of `index` for `platform` (the first match, as Docker takes it).
pub fn select<'a>(
    index: &'a ImageIndex,
    platform: &Platform,
) -> Result<&'a Descriptor, ManifestError> {
    index
        .manifests()
        .iter()
        .find(|d| platform.matches(d))
        .ok_or_else(|| ManifestError::NoMatch(platform.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const D1: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    const D2: &str = "sha256:a3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    fn docker_manifest() -> String {
        format!(
            r#"{{"schemaVersion": 2, "mediaType": "{DOCKER_MANIFEST}",
                "config": {{"mediaType": "application/vnd.docker.container.image.v1+json", "size": 10, "digest": "{D1}"}},
                "layers": [{{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "size": 20, "digest": "{D2}"}}]}}"#
        )
    }

    fn index() -> String {
        format!(
            r#"{{"schemaVersion": 2, "mediaType": "{DOCKER_MANIFEST_LIST}", "manifests": [
                {{"mediaType": "{DOCKER_MANIFEST}", "size": 1, "digest": "{D1}", "platform": {{"os": "linux", "architecture": "arm", "variant": "v7"}}}},
                {{"mediaType": "{DOCKER_MANIFEST}", "size": 1, "digest": "{D2}", "platform": {{"os": "linux", "architecture": "amd64"}}}}
            ]}}"#
        )
    }

    #[test]
    fn docker_and_oci_shapes_parse() {
        let m = parse(Some(DOCKER_MANIFEST), docker_manifest().as_bytes()).unwrap();
        let Manifest::Image(m) = m else {
            panic!("not an image")
        };
        assert_eq!(m.layers().len(), 1);
        assert_eq!(m.config().digest().to_string(), D1);
        // No media type given: the JSON says.
        assert!(matches!(
            parse(None, index().as_bytes()).unwrap(),
            Manifest::Index(_)
        ));
        assert!(matches!(
            parse(
                Some("application/vnd.oci.image.index.v1+json; charset=utf-8"),
                index().as_bytes()
            )
            .unwrap(),
            Manifest::Index(_)
        ));
    }

    #[test]
    fn unknown_media_type_and_bad_json_are_errors() {
        let err = parse(
            Some("application/vnd.docker.distribution.manifest.v1+prettyjws"),
            b"{}",
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("unsupported manifest media type"),
            "{err}"
        );
        let err = parse(Some(OCI_MANIFEST), b"{\"layers\": 3}").unwrap_err();
        assert!(err.to_string().contains("invalid manifest"), "{err}");
    }

    #[test]
    fn platform_selection() {
        let Manifest::Index(idx) = parse(None, index().as_bytes()).unwrap() else {
            panic!()
        };
        let amd = select(&idx, &Platform::parse("linux/amd64").unwrap()).unwrap();
        assert_eq!(amd.digest().to_string(), D2);
        let arm = select(&idx, &Platform::parse("linux/arm/v7").unwrap()).unwrap();
        assert_eq!(arm.digest().to_string(), D1);
        let err = select(&idx, &Platform::parse("linux/s390x").unwrap()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "no matching manifest for linux/s390x in the manifest list entries"
        );
        assert!(Platform::parse("linux").is_err());
        #[cfg(target_arch = "x86_64")]
        assert_eq!(Platform::host().to_string(), "linux/amd64");
    }
}
