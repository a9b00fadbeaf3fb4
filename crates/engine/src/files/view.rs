//! A read-only view of an image's filesystem: a snapshot of its top layer mounted under the
//! image store's `tmp` (`unpack-<pid>-...`, swept if berthd dies) until the [`View`] is dropped.
//! Builds read `COPY --from` sources through one, `docker diff` asks one what the image had.

use std::sync::Arc;

use berth_image::import::ImageStore;

use crate::error::{EngineError, Result};

pub struct View {
    /// Where the image's root filesystem is.
    pub dir: std::path::PathBuf,
    key: String,
    store: Arc<ImageStore>,
    mounted: bool,
}

impl View {
    /// Mounts the filesystem of the layer chain `top` (`None`: an empty one).
    pub fn mount(store: &Arc<ImageStore>, top: Option<&str>) -> Result<View> {
        let key = crate::build::scratch_name("unpack");
        let mounts = store
            .snapshots
            .view(&key, top)
            .map_err(|e| EngineError::internal("a view of the image", e))?;
        let mut view = View {
            dir: store.tmp_dir().join(format!("{key}-root")),
            key,
            store: Arc::clone(store),
            mounted: false,
        };
        std::fs::create_dir_all(&view.dir)
            .map_err(|e| EngineError::internal("a view of the image", e))?;
        for m in &mounts {
            m.mount(&view.dir)
                .map_err(|e| EngineError::internal("mounting a view of the image", e))?;
            view.mounted = true;
        }
        Ok(view)
    }
}

impl Drop for View {
    fn drop(&mut self) {
        if self.mounted {
            let _ = nix::mount::umount2(&self.dir, nix::mount::MntFlags::MNT_DETACH);
        }
        let _ = std::fs::remove_dir(&self.dir);
        if let Err(e) = self.store.snapshots.remove(&self.key) {
            tracing::warn!(error = %e, "removing a view of an image");
        }
    }
}
