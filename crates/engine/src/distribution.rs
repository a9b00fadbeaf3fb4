//! Pull and push through the API: `berth-registry` with the credential the client sent
//! (`X-Registry-Auth`), progress as Docker's JSON messages.

use std::collections::HashMap;
use std::sync::Arc;

use base64::Engine as _;
use berth_image::reference::Reference;
use berth_registry::credentials::Credential;
use berth_registry::progress::Progress;
use berth_registry::{Client, ClientOptions, PullOptions, PushOptions};
use serde_json::{json, Value};
use tokio::sync::mpsc;

use crate::error::{EngineError, Result};
use crate::Engine;

/// dockerd's check of a `registry-mirrors` entry (`invalid mirror: ...`); the mirror ending
/// with `/`, as `docker info` shows it.
pub use berth_registry::hosts::validate_mirror;

/// The JSON of a base64 header (url-safe with or without padding, or standard).
fn decode_header(header: Option<&str>) -> Option<Value> {
    let text = header?.trim();
    let bytes = base64::engine::general_purpose::URL_SAFE
        .decode(text)
        .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(text))
        .or_else(|_| base64::engine::general_purpose::STANDARD.decode(text))
        .ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Decodes `X-Registry-Auth` (base64url JSON `{"username","password","serveraddress"}`, or
/// `{"identitytoken"}`); anything unreadable is anonymous, as dockerd treats it.
pub fn decode_auth(header: Option<&str>) -> Option<Credential> {
    credential(&decode_header(header)?)
}

/// Decodes `X-Registry-Config` (`POST /build`): base64 JSON of registry → auth config; the
/// keys are reduced to the registry's domain (`https://index.docker.io/v1/` is Docker Hub's).
pub fn decode_registry_config(header: Option<&str>) -> HashMap<String, Credential> {
    let Some(Value::Object(map)) = decode_header(header) else {
        return HashMap::new();
    };
    map.iter()
        .filter_map(|(server, v)| {
            Some((
                crate::image_archive::registry_domain(server),
                credential(v)?,
            ))
        })
        .collect()
}

/// The credential of one auth config object.
fn credential(v: &Value) -> Option<Credential> {
    let username = v["username"].as_str().unwrap_or_default().to_string();
    let password = v["password"]
        .as_str()
        .or_else(|| v["identitytoken"].as_str())
        .unwrap_or_default()
        .to_string();
    (!username.is_empty() || !password.is_empty()).then_some(Credential { username, password })
}

/// Where the daemon sends a pull's or push's messages (Docker's JSON objects).
pub type Messages = mpsc::UnboundedSender<Value>;

impl Engine {
    fn registry_client(&self, domain: &str, auth: Option<Credential>) -> Result<Client> {
        let mut credentials = HashMap::new();
        if let Some(c) = auth {
            credentials.insert(domain.to_string(), c);
        }
        Client::new(ClientOptions {
            insecure: self.config.insecure_registries.clone(),
            credentials,
            certs_dir: Some(self.config.certs_dir.clone()),
            mirrors: self.config.registry_mirrors.clone(),
            ..Default::default()
        })
        .map_err(|e| EngineError::internal("registry client", e))
    }

    /// Pulls `reference`, sending progress to `out`. Returns the resolved digest and whether
    /// anything was downloaded.
    pub async fn pull(
        &self,
        reference: &Reference,
        auth: Option<Credential>,
        out: Messages,
    ) -> Result<()> {
        let client = self.registry_client(reference.domain(), auth)?;
        let tag_or_digest = reference
            .digest()
            .map(|d| d.to_string())
            .or_else(|| reference.tag().map(str::to_string))
            .unwrap_or_else(|| "latest".into());
        let _ = out.send(
            json!({"status": format!("Pulling from {}", reference.path()), "id": tag_or_digest}),
        );
        let progress_out = out.clone();
        let options = PullOptions {
            progress: Some(Arc::new(move |p: &Progress| {
                let _ = progress_out.send(p.json_message());
            })),
            ..Default::default()
        };
        // Docker's "Downloaded newer image" means the name is new or moved, whatever was
        // fetched; "Image is up to date" that it already named this image.
        let before = self
            .images
            .store
            .metadata
            .image(&reference.to_string())
            .ok()
            .map(|i| i.target);
        let pulled = berth_registry::pull(&client, &self.images.store, reference, &options)
            .await
            .map_err(|e| match &e {
                berth_registry::PullError::Resolve(
                    berth_registry::resolve::ResolveError::NotFound { .. },
                ) => EngineError::NotFound(e.to_string()),
                _ => EngineError::internal("", e),
            })?;
        let _ = out.send(json!({"status": format!("Digest: {}", pulled.digest)}));
        let status = if pulled.downloaded || before.as_ref() != Some(&pulled.manifest) {
            "Downloaded newer image for"
        } else {
            "Image is up to date for"
        };
        let _ = out.send(json!({"status": format!("Status: {status} {}", reference.familiar())}));
        self.events.publish(
            berth_api::models::EventMessageTypeEnum::IMAGE,
            "pull",
            &reference.familiar(),
            [("name".to_string(), reference.familiar())].into(),
        );
        Ok(())
    }

    /// `GET /distribution/{name}/json`: what the registry says `reference` is, without pulling
    /// it: the descriptor of its manifest (or index) and the platforms it has (an index's
    /// entries, or the architecture and os of an image's config).
    pub async fn distribution_inspect(
        &self,
        reference: &Reference,
        auth: Option<Credential>,
    ) -> Result<Value> {
        use berth_registry::resolve::{fetch_config, fetch_manifest, ResolveError};
        let client = self.registry_client(reference.domain(), auth)?;
        let tag_or_digest = reference
            .digest()
            .map(|d| d.to_string())
            .or_else(|| reference.tag().map(str::to_string))
            .unwrap_or_else(|| berth_image::reference::DEFAULT_TAG.to_string());
        let registry_error = |e: ResolveError| match e {
            ResolveError::NotFound { .. } | ResolveError::Denied { .. } => {
                EngineError::NotFound(e.to_string())
            }
            e => EngineError::internal("", e),
        };
        let fetched = fetch_manifest(&client, reference, &tag_or_digest)
            .await
            .map_err(registry_error)?;
        let parsed = berth_image::manifest::parse(Some(&fetched.media_type), &fetched.bytes)
            .map_err(|e| EngineError::internal("", e))?;
        let platforms: Vec<Value> =
            match parsed {
                berth_image::manifest::Manifest::Index(index) => index
                    .manifests()
                    .iter()
                    .filter_map(|m| m.platform().as_ref())
                    .map(|p| {
                        let mut v = json!({
                            "architecture": p.architecture().to_string(),
                            "os": p.os().to_string(),
                        });
                        if let Some(variant) = p.variant() {
                            v["variant"] = json!(variant);
                        }
                        if let Some(version) = p.os_version() {
                            v["os.version"] = json!(version);
                        }
                        if let Some(features) = p.os_features() {
                            v["os.features"] = json!(features);
                        }
                        v
                    })
                    .collect(),
                berth_image::manifest::Manifest::Image(image) => {
                    let digest: berth_image::digest::Digest =
                        image.config().digest().to_string().parse().map_err(|e| {
                            EngineError::internal("the manifest's config digest", e)
                        })?;
                    let bytes = fetch_config(&client, reference, &digest)
                        .await
                        .map_err(registry_error)?;
                    let config: Value = serde_json::from_slice(&bytes)
                        .map_err(|e| EngineError::internal("the image config", e))?;
                    let mut v = json!({
                        "architecture": config["architecture"].as_str().unwrap_or_default(),
                        "os": config["os"].as_str().unwrap_or_default(),
                    });
                    if let Some(variant) = config["variant"].as_str() {
                        v["variant"] = json!(variant);
                    }
                    vec![v]
                }
            };
        Ok(json!({
            "Descriptor": {
                "mediaType": fetched.media_type,
                "digest": fetched.digest.to_string(),
                "size": fetched.bytes.len(),
            },
            "Platforms": platforms,
        }))
    }

    /// `GET /images/search?term=&limit=&filters=`: the index of `term`'s registry (Docker Hub's
    /// for a name without a registry host) searched for the rest of the term, filtered as
    /// dockerd filters (`is-official`, `is-automated`, `stars`).
    pub async fn search(
        &self,
        term: &str,
        limit: Option<i64>,
        filters: &berth_api::query::Filters,
        auth: Option<Credential>,
    ) -> Result<Vec<berth_registry::search::SearchResult>> {
        let limit = limit.unwrap_or(0);
        let limit = if limit == 0 { 25 } else { limit };
        if !(1..=100).contains(&limit) {
            return Err(EngineError::InvalidParameter(format!(
                "limit {limit} is outside the range of [1, 100]"
            )));
        }
        for key in filters.0.keys() {
            if !matches!(key.as_str(), "is-automated" | "is-official" | "stars") {
                return Err(EngineError::InvalidParameter(format!(
                    "invalid filter '{key}'"
                )));
            }
        }
        let invalid = |key: &str, values: &[String]| {
            EngineError::InvalidParameter(format!("invalid filter '{key}=[{}]'", values.join(" ")))
        };
        let flag = |key: &str| -> Result<Option<bool>> {
            match filters.get(key) {
                [] => Ok(None),
                [v] if v == "true" => Ok(Some(true)),
                [v] if v == "false" => Ok(Some(false)),
                values => Err(invalid(key, values)),
            }
        };
        let (automated, official) = (flag("is-automated")?, flag("is-official")?);
        let mut stars = None;
        for v in filters.get("stars") {
            let n: i64 = v
                .parse()
                .map_err(|_| invalid("stars", std::slice::from_ref(v)))?;
            stars = Some(stars.map_or(n, |s: i64| s.max(n)));
        }
        // dockerd's split: a first part with a dot, a colon, or `localhost` is a registry.
        let (domain, remote) = match term.split_once('/') {
            Some((host, rest))
                if host.contains('.') || host.contains(':') || host == "localhost" =>
            {
                (host, rest)
            }
            _ => ("docker.io", term),
        };
        let remote = match domain {
            "docker.io" => remote.strip_prefix("library/").unwrap_or(remote),
            _ => remote,
        };
        let client = self.registry_client(domain, auth)?;
        let results = berth_registry::search::search(&client, domain, remote, limit as u32)
            .await
            .map_err(|e| EngineError::internal("", e))?;
        Ok(results
            .into_iter()
            .filter(|r| automated.is_none_or(|a| a == r.is_automated))
            .filter(|r| official.is_none_or(|o| o == r.is_official))
            .filter(|r| stars.is_none_or(|s| r.star_count >= s))
            .collect())
    }

    /// Pushes the image named `reference`, sending progress to `out`.
    pub async fn push(
        &self,
        reference: &Reference,
        auth: Option<Credential>,
        out: Messages,
    ) -> Result<()> {
        let name = reference.to_string();
        if self.images.store.metadata.image(&name).is_err() {
            return Err(EngineError::NotFound(format!(
                "An image does not exist locally with the tag: {}",
                reference.familiar_name()
            )));
        }
        let client = self.registry_client(reference.domain(), auth)?;
        let _ = out.send(json!({"status": format!("The push refers to repository [{}]", reference.name().trim_start_matches("docker.io/"))}));
        let progress_out = out.clone();
        let options = PushOptions {
            progress: Some(Arc::new(move |p: &Progress| {
                let _ = progress_out.send(p.json_message());
            })),
            ..Default::default()
        };
        let pushed = berth_registry::push(&client, &self.images.store, &name, reference, &options)
            .await
            .map_err(|e| EngineError::internal("", e))?;
        let tag = pushed.tag.clone().unwrap_or_default();
        let _ = out.send(
            json!({"status": format!("{tag}: digest: {} size: {}", pushed.digest, pushed.size)}),
        );
        let _ = out.send(json!({"progressDetail": {}, "aux": {"Tag": tag, "Digest": pushed.digest.to_string(), "Size": pushed.size}}));
        self.events.publish(
            berth_api::models::EventMessageTypeEnum::IMAGE,
            "push",
            &reference.familiar(),
            [("name".to_string(), reference.familiar())].into(),
        );
        Ok(())
    }
}
