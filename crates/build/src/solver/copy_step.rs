//! `COPY` and `ADD` steps: sources from the context, a stage or an image, the destination
//! resolved against WORKDIR, and a cache key from the checksum of what is copied.
//!
//! `--link` copies into an empty layer of its own (made on `scratch`), then stacks that layer
//! on the stage's image. Its cache key leaves the stage's image out (unless `--chown` names a
//! user, which the image's passwd resolves), so a rebuild on a changed base reuses the layer.

use sha2::{Digest as _, Sha256};

use super::config::{self, nop_glued};
use super::stage::{cache_key, now, State};
use super::{CopyRequest, CopySource, Download, Image, SolveError};

impl State<'_> {
    /// The image `COPY --from=` names: a stage (by name or index) or an image.
    pub(super) fn copy_source_image(&self, from: &str) -> Result<Image, SolveError> {
        let lower = from.to_ascii_lowercase();
        let stages = &self.ctx.df.stages;
        let named = stages
            .iter()
            .position(|s| s.name.as_deref() == Some(lower.as_str()));
        let index = match (named, from.parse::<usize>()) {
            (Some(i), _) => Some(i),
            (None, Ok(i)) if i < stages.len() => Some(i),
            (None, Ok(_)) => {
                return Err(SolveError::UnknownFrom(
                    from.into(),
                    "index out of bounds".into(),
                ))
            }
            (None, Err(_)) => None,
        };
        match index {
            Some(i) => self
                .ctx
                .built
                .get(i)
                .cloned()
                .flatten()
                .ok_or_else(|| SolveError::UnknownFrom(from.into(), "stage not built".into())),
            None => self
                .ctx
                .backend
                .image(from, false, self.ctx.out)
                .map_err(|e| SolveError::UnknownFrom(from.into(), e.message)),
        }
    }

    #[allow(clippy::too_many_arguments)]
    /// `ADD <url>...`: each fetched by the backend and checked against `--checksum`.
    fn fetch_sources(
        &self,
        name: &str,
        sources: &[String],
        checksum: Option<&str>,
    ) -> Result<Vec<Download>, SolveError> {
        if name != "ADD" {
            return Err(SolveError::Invalid(format!(
                "{name} failed: source can't be a URL for {name}"
            )));
        }
        let mut out = Vec::new();
        for url in sources {
            let d = self
                .ctx
                .backend
                .fetch(url)
                .map_err(|e| SolveError::Invalid(format!("{name} failed: {e}")))?;
            if let Some(want) = checksum {
                if want != d.digest {
                    return Err(SolveError::Invalid(format!(
                        "{name} failed: checksum mismatch for {url}: expected {want}, got {}",
                        d.digest
                    )));
                }
            }
            out.push(d);
        }
        Ok(out)
    }

    pub(super) fn copy(
        &mut self,
        name: &str,
        source: CopySource,
        sources: Vec<String>,
        inline: Vec<(String, String)>,
        dest: &str,
        flags: CopyFlags,
    ) -> Result<(), SolveError> {
        let workdir = self.image.config["config"]["WorkingDir"]
            .as_str()
            .unwrap_or("")
            .to_string();
        let dest_is_dir = dest.ends_with('/') || sources.len() + inline.len() > 1;
        let mut abs = config::workdir(&workdir, dest);
        if dest_is_dir && !abs.ends_with('/') {
            abs.push('/');
        }
        let is_url = |s: &String| s.starts_with("http://") || s.starts_with("https://");
        let (urls, sources): (Vec<String>, Vec<String>) = sources.into_iter().partition(is_url);
        if flags.checksum.is_some()
            && (urls.is_empty() || !sources.is_empty() || !inline.is_empty())
        {
            return Err(SolveError::Invalid(
                "checksum can't be specified for non-HTTP(S) sources".into(),
            ));
        }
        let downloads = if urls.is_empty() {
            Vec::new()
        } else {
            self.fetch_sources(name, &urls, flags.checksum.as_deref())?
        };
        // What the step reads: fetched files by their digests, heredocs by their text, from an
        // image or a stage its id and the paths, from the context the checksum of the files
        // (content, mode, owner; not times). Several kinds: `multi:` and the digest of all.
        let mut read: Vec<String> = Vec::new();
        if !sources.is_empty() {
            read.push(match &source {
                CopySource::Image(img) => format!("{}:{}", img.id, sources.join(" ")),
                CopySource::Context(ctx) => {
                    let sum =
                        crate::checksum::checksum(ctx.source(), &sources, &flags.exclude, None)
                            .map_err(|e| SolveError::Invalid(format!("{name} failed: {e}")))?;
                    let kind = if sources.len() == 1 { "file" } else { "multi" };
                    format!(
                        "{kind}:{}",
                        sum.digest.strip_prefix("sha256:").unwrap_or(&sum.digest)
                    )
                }
            });
        }
        if !downloads.is_empty() {
            let digests: Vec<&str> = downloads.iter().map(|d| d.digest.as_str()).collect();
            read.push(format!("file:{}", digests.join(",")));
        }
        if !inline.is_empty() {
            let mut h = Sha256::new();
            for (file, data) in &inline {
                h.update(file.as_bytes());
                h.update(b"\0");
                h.update(data.as_bytes());
                h.update(b"\0");
            }
            read.push(format!("file:{}", hex::encode(h.finalize())));
        }
        let what = match read.as_slice() {
            [one] => one.clone(),
            all => format!("multi:{}", hex::encode(Sha256::digest(all.join("\n")))),
        };
        let created_by = nop_glued(&self.image.config, &format!("{name} {what} in {abs} "));
        let mut config = self.image.config.clone();
        config::push_history(&mut config, &now(), &created_by, false);
        let parts = [
            "copy",
            &created_by,
            flags.chown.as_deref().unwrap_or(""),
            flags.chmod.as_deref().unwrap_or(""),
            &flags.parents.to_string(),
            &flags.exclude.join("\n"),
            &flags.add.to_string(),
        ];
        let key = Some(cache_key(&self.image, &parts));
        let link = flags.link.then(|| {
            // A user name depends on the image's passwd; numeric ids do not.
            let numeric = flags.chown.as_deref().is_none_or(|c| {
                c.split(':')
                    .all(|part| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit()))
            });
            let parent = if numeric {
                Image::scratch(self.ctx.platform)
            } else {
                self.image.clone()
            };
            let mut link_parts = parts.to_vec();
            link_parts[0] = "copy-link";
            cache_key(&parent, &link_parts)
        });
        let req = CopyRequest {
            source,
            sources,
            inline,
            dest: abs,
            dest_is_dir,
            chown: flags.chown,
            chmod: flags.chmod,
            add: flags.add,
            checksum: flags.checksum,
            parents: flags.parents,
            exclude: flags.exclude,
            users_from: None,
            downloads,
            config,
        };
        let failed = |e: super::BackendError| SolveError::Invalid(format!("{name} failed: {e}"));
        self.step(key, &req.config, |s| match link {
            None => s.ctx.backend.copy(&s.image, &req).map_err(failed),
            Some(link_key) => {
                let backend = s.ctx.backend;
                let cached = (!s.ctx.opts.no_cache)
                    .then(|| backend.cache_get(&link_key))
                    .flatten();
                let layer = match cached {
                    Some(layer) => {
                        s.ctx.out.arrow("Using cache");
                        layer
                    }
                    None => {
                        let scratch = Image::scratch(s.ctx.platform);
                        let mut config = scratch.config.clone();
                        config::push_history(&mut config, &now(), &created_by, false);
                        let alone = CopyRequest {
                            users_from: Some(s.image.clone()),
                            config,
                            ..req.clone()
                        };
                        let layer = backend.copy(&scratch, &alone).map_err(failed)?;
                        backend.cache_put(&link_key, &layer);
                        layer
                    }
                };
                Ok(backend.reuse_layer(&s.image, &layer, 0, &req.config)?)
            }
        })
    }
}

/// The flags of a `COPY` or `ADD`.
pub(super) struct CopyFlags {
    pub(super) chown: Option<String>,
    pub(super) chmod: Option<String>,
    pub(super) add: bool,
    pub(super) checksum: Option<String>,
    pub(super) parents: bool,
    pub(super) exclude: Vec<String>,
    /// `--link`: an independent layer.
    pub(super) link: bool,
}
