//! `ImageService` over the engine's image store: the same images as the Docker API's.

use std::collections::HashMap;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use berth_api::models::ImageSummary;
use berth_engine::error::EngineError;
use berth_image::reference::Reference;
use berth_registry::credentials::Credential;
use k8s_cri::v1 as cri;
use k8s_cri::v1::image_service_server::ImageService;
use tonic::{Request, Response, Status};

use crate::{status, Cri};

/// The name an `ImageSpec` asks for.
fn spec_name(spec: Option<&cri::ImageSpec>) -> Result<&str, Status> {
    match spec.map(|s| s.image.trim()) {
        Some(name) if !name.is_empty() => Ok(name),
        _ => Err(Status::invalid_argument("no image given")),
    }
}

/// The credential of a CRI `AuthConfig`: username and password, `auth` (base64
/// `user:password`), or an identity token.
fn credential(auth: Option<&cri::AuthConfig>) -> Result<Option<Credential>, Status> {
    let Some(auth) = auth else { return Ok(None) };
    let (mut username, mut password) = (auth.username.clone(), auth.password.clone());
    if !auth.auth.is_empty() {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(auth.auth.trim())
            .map_err(|e| Status::invalid_argument(format!("invalid auth: {e}")))?;
        let text = String::from_utf8(bytes)
            .map_err(|_| Status::invalid_argument("invalid auth: not UTF-8"))?;
        let Some((u, p)) = text.split_once(':') else {
            return Err(Status::invalid_argument(
                "invalid auth: expected user:password",
            ));
        };
        (username, password) = (u.to_string(), p.to_string());
    }
    if password.is_empty() && !auth.identity_token.is_empty() {
        password = auth.identity_token.clone();
    }
    Ok((!username.is_empty() || !password.is_empty()).then_some(Credential { username, password }))
}

impl Cri {
    /// The CRI view of the image `key` resolves to, or `None` when there is none.
    fn image(&self, key: &str) -> Result<Option<(cri::Image, serde_json::Value)>, Status> {
        let summaries = self.engine.images.list().map_err(status)?;
        self.image_in(key, &summaries)
    }

    /// [`Cri::image`] with the engine's list already read.
    fn image_in(
        &self,
        key: &str,
        summaries: &[ImageSummary],
    ) -> Result<Option<(cri::Image, serde_json::Value)>, Status> {
        let resolved = match self.engine.images.resolve(key) {
            Ok(r) => r,
            Err(EngineError::NotFound(_)) => return Ok(None),
            Err(e) => return Err(status(e)),
        };
        let id = resolved.id.to_string();
        let Some(summary) = summaries.iter().find(|s| s.id == id) else {
            return Ok(None);
        };
        let user = resolved.config["config"]["User"]
            .as_str()
            .unwrap_or_default();
        let user = user.split(':').next().unwrap_or_default();
        let (uid, username) = match user.parse::<i64>() {
            Ok(uid) => (Some(cri::Int64Value { value: uid }), String::new()),
            Err(_) => (None, user.to_string()),
        };
        let image = cri::Image {
            id: id.clone(),
            repo_tags: summary.repo_tags.clone(),
            repo_digests: summary.repo_digests.clone(),
            size: u64::try_from(summary.size).unwrap_or_default(),
            uid,
            username,
            spec: Some(cri::ImageSpec {
                image: id,
                ..Default::default()
            }),
            pinned: false,
        };
        Ok(Some((image, resolved.config)))
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(Cri) -> Result<T, Status> + Send + 'static,
    ) -> Result<T, Status> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || f(this))
            .await
            .map_err(|e| Status::internal(e.to_string()))?
    }
}

/// Bytes and inodes under `dir` (not following symlinks, each inode counted once).
fn usage(dir: &Path) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt as _;
    let mut seen = std::collections::HashSet::new();
    let (mut bytes, mut inodes) = (0, 0);
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(meta) = entry.metadata() else { continue };
            if seen.insert((meta.dev(), meta.ino())) {
                bytes += meta.blocks() * 512;
                inodes += 1;
            }
            if meta.is_dir() {
                stack.push(entry.path());
            }
        }
    }
    (bytes, inodes)
}

#[tonic::async_trait]
impl ImageService for Cri {
    async fn list_images(
        &self,
        request: Request<cri::ListImagesRequest>,
    ) -> Result<Response<cri::ListImagesResponse>, Status> {
        let filter = request
            .into_inner()
            .filter
            .and_then(|f| f.image)
            .map(|s| s.image)
            .filter(|s| !s.trim().is_empty());
        let images = self
            .blocking(move |cri| match filter {
                // A filter names one image, as containerd resolves it.
                Some(name) => Ok(cri.image(&name)?.map(|(i, _)| i).into_iter().collect()),
                None => {
                    let summaries = cri.engine.images.list().map_err(status)?;
                    let mut out = Vec::new();
                    for s in &summaries {
                        out.extend(cri.image_in(&s.id, &summaries)?.map(|(i, _)| i));
                    }
                    Ok(out)
                }
            })
            .await?;
        Ok(Response::new(cri::ListImagesResponse { images }))
    }

    async fn image_status(
        &self,
        request: Request<cri::ImageStatusRequest>,
    ) -> Result<Response<cri::ImageStatusResponse>, Status> {
        let request = request.into_inner();
        let name = spec_name(request.image.as_ref())?.to_string();
        let verbose = request.verbose;
        let found = self.blocking(move |cri| cri.image(&name)).await?;
        // A missing image is no error: its status is empty.
        let mut info = HashMap::new();
        if let (true, Some((_, config))) = (verbose, &found) {
            info.insert(
                "info".to_string(),
                serde_json::json!({ "imageSpec": config }).to_string(),
            );
        }
        Ok(Response::new(cri::ImageStatusResponse {
            image: found.map(|(i, _)| i),
            info,
        }))
    }

    async fn pull_image(
        &self,
        request: Request<cri::PullImageRequest>,
    ) -> Result<Response<cri::PullImageResponse>, Status> {
        let request = request.into_inner();
        let name = spec_name(request.image.as_ref())?;
        let reference: Reference = name
            .parse()
            .map_err(|e| Status::invalid_argument(format!("invalid image {name:?}: {e}")))?;
        let auth = credential(request.auth.as_ref())?;
        // Progress goes nowhere: CRI's pull answers once, when done.
        let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
        self.engine
            .pull(&reference, auth, tx)
            .await
            .map_err(status)?;
        let full = reference.to_string();
        let image_ref = self
            .blocking(move |cri| cri.engine.images.resolve(&full).map_err(status))
            .await?
            .id
            .to_string();
        Ok(Response::new(cri::PullImageResponse { image_ref }))
    }

    async fn remove_image(
        &self,
        request: Request<cri::RemoveImageRequest>,
    ) -> Result<Response<cri::RemoveImageResponse>, Status> {
        let name = spec_name(request.get_ref().image.as_ref())?.to_string();
        self.blocking(move |cri| {
            let id = match cri.engine.images.resolve(&name) {
                Ok(r) => r.id.to_string(),
                // Removing what is not there succeeds, as in containerd.
                Err(EngineError::NotFound(_)) => return Ok(()),
                Err(e) => return Err(status(e)),
            };
            // The image goes with all its names, as containerd removes it.
            match cri.engine.images.remove(&id, true) {
                Ok(_) | Err(EngineError::NotFound(_)) => Ok(()),
                Err(e) => Err(status(e)),
            }
        })
        .await?;
        Ok(Response::new(cri::RemoveImageResponse {}))
    }

    async fn image_fs_info(
        &self,
        _request: Request<cri::ImageFsInfoRequest>,
    ) -> Result<Response<cri::ImageFsInfoResponse>, Status> {
        let root = self.engine.config.data_root.join("image");
        let (mountpoint, (bytes, inodes)) = self
            .blocking(move |_| Ok((root.display().to_string(), usage(&root))))
            .await?;
        let timestamp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
            .unwrap_or_default();
        let fs = cri::FilesystemUsage {
            timestamp,
            fs_id: Some(cri::FilesystemIdentifier { mountpoint }),
            used_bytes: Some(cri::UInt64Value { value: bytes }),
            inodes_used: Some(cri::UInt64Value { value: inodes }),
        };
        Ok(Response::new(cri::ImageFsInfoResponse {
            image_filesystems: vec![fs],
            container_filesystems: Vec::new(),
        }))
    }
}
