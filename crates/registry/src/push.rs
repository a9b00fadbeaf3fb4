//! Push: an image of the store sent to a registry: each blob (layers, then the config) checked
//! with `HEAD` and skipped if the repository has it, mounted from the repository the image came
//! from when that is on the same registry, otherwise uploaded (monolithic `PUT`, or chunked
//! `PATCH`es then a closing `PUT`); then the manifest, under the tag.

use berth_image::content::ContentError;
use berth_image::digest::Digest;
use berth_image::import::ImageStore;
use berth_image::manifest::{self, Manifest, ManifestError};
use berth_image::metadata::MetadataError;
use berth_image::reference::{Reference, DEFAULT_TAG};
use futures_util::future::BoxFuture;
use futures_util::stream::{self, StreamExt, TryStreamExt};
use reqwest::header::{CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, LOCATION};
use reqwest::{Method, Response, StatusCode};
use tokio::io::AsyncReadExt;

use crate::client::{error_of, Access, Client, ClientError};
use crate::progress::{short_id, ProgressFn, Reporter, Status};

#[derive(Debug, thiserror::Error)]
pub enum PushError {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error(transparent)]
    Content(#[from] ContentError),
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error("An image does not exist locally with the tag: {0}")]
    NoSuchImage(String),
    #[error(transparent)]
    Metadata(MetadataError),
    #[error("{0} is an index: pushing indexes is not supported")]
    Index(Digest),
    #[error("blob {digest}: {message}")]
    Blob { digest: Digest, message: String },
    #[error("reading {digest}: {source}")]
    Read {
        digest: Digest,
        #[source]
        source: std::io::Error,
    },
}

/// How to push.
#[derive(Clone)]
pub struct PushOptions {
    /// Upload blobs larger than this in `PATCH` chunks of this size; `None` uploads each blob
    /// with one `PUT`.
    pub chunk_size: Option<u64>,
    /// Blobs sent at once (default 3).
    pub concurrency: usize,
    pub progress: Option<ProgressFn>,
}

impl Default for PushOptions {
    fn default() -> Self {
        PushOptions {
            chunk_size: None,
            concurrency: 3,
            progress: None,
        }
    }
}

impl std::fmt::Debug for PushOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PushOptions")
            .field("chunk_size", &self.chunk_size)
            .field("concurrency", &self.concurrency)
            .finish_non_exhaustive()
    }
}

/// What a push did.
#[derive(Debug, Clone)]
pub struct Pushed {
    /// The manifest's digest, as the registry stores it.
    pub digest: Digest,
    /// The manifest's size.
    pub size: u64,
    /// The tag it was pushed under (none for a push by digest).
    pub tag: Option<String>,
}

struct Target<'a> {
    client: &'a Client,
    reference: &'a Reference,
    /// The repository (same registry) blobs may be mounted from.
    mount_from: Option<String>,
    reporter: Reporter,
}

/// Pushes the store's image named `source` (a full name as stored) as `target`.
pub async fn push(
    client: &Client,
    store: &ImageStore,
    source: &str,
    target: &Reference,
    options: &PushOptions,
) -> Result<Pushed, PushError> {
    let image = store.metadata.image(source).map_err(|e| match e {
        MetadataError::NoSuchImage(_) => PushError::NoSuchImage(target.familiar()),
        other => PushError::Metadata(other),
    })?;
    let bytes = store.content.read_to_vec(&image.target)?;
    let Manifest::Image(m) = manifest::parse(Some(&image.media_type), &bytes)? else {
        return Err(PushError::Index(image.target));
    };
    let mount_from = source
        .parse::<Reference>()
        .ok()
        .filter(|s| s.domain() == target.domain() && s.path() != target.path())
        .map(|s| s.path().to_string());
    let t = Target {
        client,
        reference: target,
        mount_from,
        reporter: Reporter(options.progress.clone()),
    };
    let mut blobs = Vec::new();
    for d in m.layers() {
        blobs.push((parse(d.digest().as_ref())?, d.size()));
    }
    for (digest, size) in &blobs {
        t.reporter
            .report(&short_id(digest), Status::Preparing, 0, *size);
    }
    // Boxed, so the push's future is `Send` for any caller's lifetimes (see pull).
    let mut jobs: Vec<BoxFuture<'_, Result<(), PushError>>> = Vec::new();
    for (d, size) in &blobs {
        jobs.push(Box::pin(push_blob(&t, store, d, *size, options)));
    }
    stream::iter(jobs)
        .buffer_unordered(options.concurrency.max(1))
        .try_collect::<Vec<()>>()
        .await?;
    let config = m.config();
    push_blob(
        &t,
        store,
        &parse(config.digest().as_ref())?,
        config.size(),
        options,
    )
    .await?;
    let (tag, location) = match (target.digest(), target.tag()) {
        (Some(d), _) => (None, d.to_string()),
        (None, tag) => {
            let tag = tag.unwrap_or(DEFAULT_TAG).to_string();
            (Some(tag.clone()), tag)
        }
    };
    let path = format!("/v2/{}/manifests/{location}", target.path());
    let resp = send(&t, Method::PUT, &path, |r| {
        r.header(CONTENT_TYPE, image.media_type.as_str())
            .body(bytes.clone())
    })
    .await?;
    if resp.status() != StatusCode::CREATED && !resp.status().is_success() {
        return Err(error_of(Method::PUT, &path, resp).await.into());
    }
    Ok(Pushed {
        digest: image.target,
        size: bytes.len() as u64,
        tag,
    })
}

async fn send(
    t: &Target<'_>,
    method: Method,
    location: &str,
    customize: impl Fn(reqwest::RequestBuilder) -> reqwest::RequestBuilder,
) -> Result<Response, ClientError> {
    let r = t.reference;
    t.client
        .send(
            r.domain(),
            r.path(),
            Access::Push,
            method,
            location,
            customize,
        )
        .await
}

/// Makes sure the repository has the blob: skipped if it does, mounted if it can be, else
/// uploaded.
async fn push_blob(
    t: &Target<'_>,
    store: &ImageStore,
    digest: &Digest,
    size: u64,
    options: &PushOptions,
) -> Result<(), PushError> {
    let id = short_id(digest);
    let repo = t.reference.path();
    let blob_path = format!("/v2/{repo}/blobs/{digest}");
    let head = send(t, Method::HEAD, &blob_path, |r| r).await?;
    if head.status().is_success() {
        t.reporter.report(&id, Status::LayerAlreadyExists, 0, 0);
        return Ok(());
    }
    let uploads = format!("/v2/{repo}/blobs/uploads/");
    let started = match &t.mount_from {
        Some(from) => {
            let mount = format!("{uploads}?mount={digest}&from={from}");
            let resp = send(t, Method::POST, &mount, |r| r.header(CONTENT_LENGTH, 0)).await?;
            if resp.status() == StatusCode::CREATED {
                t.reporter
                    .report(&id, Status::MountedFrom(from.clone()), 0, 0);
                return Ok(());
            }
            resp
        }
        None => send(t, Method::POST, &uploads, |r| r.header(CONTENT_LENGTH, 0)).await?,
    };
    let mut location = upload_location(started, &uploads).await?;
    let path = store.content.path(digest);
    let read_err = |source| PushError::Read {
        digest: digest.clone(),
        source,
    };
    match options.chunk_size.filter(|&c| c > 0 && c < size) {
        None => {
            let resp = send(t, Method::PUT, &with_digest(&location, digest), |r| {
                let p = path.clone();
                r.header(CONTENT_TYPE, "application/octet-stream")
                    .header(CONTENT_LENGTH, size)
                    .body(reqwest::Body::wrap_stream(file_stream(p)))
            })
            .await?;
            check_created(resp, &location, digest).await?;
        }
        Some(chunk) => {
            let mut file = tokio::fs::File::open(&path).await.map_err(read_err)?;
            let mut offset = 0u64;
            while offset < size {
                let len = chunk.min(size - offset);
                let mut buf = vec![0u8; len as usize];
                file.read_exact(&mut buf).await.map_err(read_err)?;
                let body = bytes::Bytes::from(buf);
                let range = format!("{offset}-{}", offset + len - 1);
                let resp = send(t, Method::PATCH, &location, |r| {
                    r.header(CONTENT_TYPE, "application/octet-stream")
                        .header(CONTENT_RANGE, range.as_str())
                        .header(CONTENT_LENGTH, len)
                        .body(body.clone())
                })
                .await?;
                location = upload_location(resp, &location).await?;
                offset += len;
                t.reporter.report(&id, Status::Pushing, offset, size);
            }
            let resp = send(t, Method::PUT, &with_digest(&location, digest), |r| {
                r.header(CONTENT_LENGTH, 0)
            })
            .await?;
            check_created(resp, &location, digest).await?;
        }
    }
    t.reporter.report(&id, Status::Pushed, size, size);
    Ok(())
}

/// The blob file as a stream of chunks, for a streamed request body.
fn file_stream(
    path: std::path::PathBuf,
) -> impl futures_util::Stream<Item = std::io::Result<bytes::Bytes>> + Send + 'static {
    stream::unfold(None, move |file: Option<tokio::fs::File>| {
        let path = path.clone();
        async move {
            let mut file = match file {
                Some(f) => f,
                None => match tokio::fs::File::open(&path).await {
                    Ok(f) => f,
                    Err(e) => return Some((Err(e), None)),
                },
            };
            let mut buf = vec![0u8; 256 << 10];
            match file.read(&mut buf).await {
                Ok(0) => None,
                Ok(n) => {
                    buf.truncate(n);
                    Some((Ok(bytes::Bytes::from(buf)), Some(file)))
                }
                Err(e) => Some((Err(e), None)),
            }
        }
    })
}

/// The `Location` of an upload the registry accepted (202).
async fn upload_location(resp: Response, url: &str) -> Result<String, PushError> {
    if resp.status() != StatusCode::ACCEPTED {
        return Err(error_of(Method::POST, url, resp).await.into());
    }
    resp.headers()
        .get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .ok_or_else(|| ClientError::Url(format!("{url}: the upload has no Location")).into())
}

async fn check_created(resp: Response, url: &str, digest: &Digest) -> Result<(), PushError> {
    if resp.status() == StatusCode::CREATED || resp.status() == StatusCode::NO_CONTENT {
        return Ok(());
    }
    let err = error_of(Method::PUT, url, resp).await;
    Err(PushError::Blob {
        digest: digest.clone(),
        message: format!("upload failed: {err}"),
    })
}

/// `location` with the `digest` query parameter that closes an upload.
fn with_digest(location: &str, digest: &Digest) -> String {
    let sep = if location.contains('?') { '&' } else { '?' };
    format!("{location}{sep}digest={digest}")
}

fn parse(s: &str) -> Result<Digest, PushError> {
    s.parse()
        .map_err(|_| PushError::Manifest(ManifestError::MediaType(format!("invalid digest {s}"))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_digest_joins_the_location_query() {
        let d = Digest::of(b"x");
        assert_eq!(
            with_digest("/v2/a/blobs/uploads/u?_state=s", &d),
            format!("/v2/a/blobs/uploads/u?_state=s&digest={d}")
        );
        assert_eq!(
            with_digest("http://h/v2/a/blobs/uploads/u", &d),
            format!("http://h/v2/a/blobs/uploads/u?digest={d}")
        );
    }
}
