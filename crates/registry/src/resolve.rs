//! Resolving a reference: fetching its manifest (by tag or digest), checking the digest, and
//! picking the platform's manifest from an index.

use berth_image::digest::Digest;
use berth_image::manifest::{self, Manifest, ManifestError, Platform, ACCEPT};
use berth_image::reference::Reference;
use oci_spec::image::ImageManifest;
use reqwest::header::{ACCEPT as ACCEPT_HEADER, CONTENT_TYPE};
use reqwest::{Method, StatusCode};

use crate::client::{error_of, http_err, Access, Client, ClientError};

/// Manifests larger than this are refused (docker's limit too).
const MANIFEST_MAX: usize = 4 << 20;

#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("manifest for {reference} not found: {source}")]
    NotFound {
        reference: String,
        source: ClientError,
    },
    #[error(
        "pull access denied for {name}, repository does not exist or may require 'docker login': {source}"
    )]
    Denied { name: String, source: ClientError },
    #[error("manifest verification failed for digest {expected}: the content has digest {actual}")]
    Digest { expected: Digest, actual: Digest },
    #[error("manifest {0}: larger than 4 MiB")]
    TooLarge(String),
    #[error(transparent)]
    Manifest(#[from] ManifestError),
}

/// One manifest as fetched: its bytes, media type and digest.
#[derive(Debug, Clone)]
pub struct Fetched {
    pub bytes: Vec<u8>,
    pub media_type: String,
    pub digest: Digest,
}

/// A reference resolved to an image manifest.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// The index the reference named, when it named one.
    pub index: Option<Fetched>,
    /// The image manifest (the platform's, from an index).
    pub manifest: Fetched,
    pub parsed: Box<ImageManifest>,
}

impl Resolved {
    /// The digest the reference resolved to: the index's if there is one (what docker prints as
    /// `Digest:`).
    pub fn digest(&self) -> &Digest {
        self.index
            .as_ref()
            .map_or(&self.manifest.digest, |i| &i.digest)
    }
}

/// Fetches `tag_or_digest` of `reference`'s repository; a digest is checked against the content.
pub async fn fetch_manifest(
    client: &Client,
    reference: &Reference,
    tag_or_digest: &str,
) -> Result<Fetched, ResolveError> {
    let path = format!("/v2/{}/manifests/{tag_or_digest}", reference.path());
    // A tag is resolved only by endpoints trusted to (`resolve`); a digest checks itself.
    let access = if tag_or_digest.parse::<Digest>().is_ok() {
        Access::Pull
    } else {
        Access::Resolve
    };
    let resp = client
        .send(
            reference.domain(),
            reference.path(),
            access,
            Method::GET,
            &path,
            |r| r.header(ACCEPT_HEADER, ACCEPT.join(", ")),
        )
        .await?;
    let status = resp.status();
    if !status.is_success() {
        let err = error_of(Method::GET, &path, resp).await;
        return Err(match status {
            StatusCode::NOT_FOUND => ResolveError::NotFound {
                reference: reference.familiar(),
                source: err,
            },
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => ResolveError::Denied {
                name: reference.familiar_name(),
                source: err,
            },
            _ => err.into(),
        });
    }
    let media_type = resp
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let bytes = read_bounded(resp, MANIFEST_MAX, &path)
        .await?
        .ok_or_else(|| ResolveError::TooLarge(tag_or_digest.to_string()))?;
    let digest = Digest::of(&bytes);
    if let Ok(expected) = tag_or_digest.parse::<Digest>() {
        if expected != digest {
            return Err(ResolveError::Digest {
                expected,
                actual: digest,
            });
        }
    }
    Ok(Fetched {
        bytes,
        media_type,
        digest,
    })
}

/// The body of `resp`, read chunk by chunk up to `max` bytes; `None` when it is longer (said
/// by its length, or found while reading: nothing past `max` is kept).
pub(crate) async fn read_bounded(
    mut resp: reqwest::Response,
    max: usize,
    path: &str,
) -> Result<Option<Vec<u8>>, ClientError> {
    if resp.content_length().is_some_and(|n| n > max as u64) {
        return Ok(None);
    }
    let mut bytes = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(http_err(Method::GET, path))? {
        if bytes.len() + chunk.len() > max {
            return Ok(None);
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(Some(bytes))
}

/// Configs larger than this are refused.
const CONFIG_MAX: usize = 8 << 20;

/// Fetches the image config `digest` of `reference`'s repository, checked against its digest.
pub async fn fetch_config(
    client: &Client,
    reference: &Reference,
    digest: &Digest,
) -> Result<Vec<u8>, ResolveError> {
    let path = format!("/v2/{}/blobs/{digest}", reference.path());
    let resp = client
        .send(
            reference.domain(),
            reference.path(),
            Access::Pull,
            Method::GET,
            &path,
            |r| r,
        )
        .await?;
    if !resp.status().is_success() {
        return Err(error_of(Method::GET, &path, resp).await.into());
    }
    let bytes = read_bounded(resp, CONFIG_MAX, &path)
        .await?
        .ok_or_else(|| ResolveError::TooLarge(digest.to_string()))?;
    let actual = Digest::of(&bytes);
    if &actual != digest {
        return Err(ResolveError::Digest {
            expected: digest.clone(),
            actual,
        });
    }
    Ok(bytes)
}

/// Resolves `reference` to the image manifest for `platform`.
pub async fn resolve(
    client: &Client,
    reference: &Reference,
    platform: &Platform,
) -> Result<Resolved, ResolveError> {
    let first = match (reference.digest(), reference.tag()) {
        (Some(d), _) => d.to_string(),
        (None, Some(t)) => t.to_string(),
        (None, None) => berth_image::reference::DEFAULT_TAG.to_string(),
    };
    let fetched = fetch_manifest(client, reference, &first).await?;
    match manifest::parse(Some(&fetched.media_type), &fetched.bytes)? {
        Manifest::Image(parsed) => Ok(Resolved {
            index: None,
            manifest: fetched,
            parsed,
        }),
        Manifest::Index(index) => {
            let entry = manifest::select(&index, platform)?;
            let inner = fetch_manifest(client, reference, entry.digest().as_ref()).await?;
            let media_type = Some(inner.media_type.as_str())
                .filter(|m| !m.is_empty())
                .map(str::to_string)
                .unwrap_or_else(|| entry.media_type().to_string());
            match manifest::parse(Some(&media_type), &inner.bytes)? {
                Manifest::Image(parsed) => Ok(Resolved {
                    index: Some(fetched),
                    manifest: Fetched {
                        media_type,
                        ..inner
                    },
                    parsed,
                }),
                Manifest::Index(_) => Err(ManifestError::MediaType(format!(
                    "{media_type} (an index inside an index)"
                ))
                .into()),
            }
        }
    }
}
