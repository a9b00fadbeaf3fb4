//! One layer of a pull: the download (async, resumed with `Range` after a broken connection)
//! feeds a blocking task through a channel; that task writes every byte into the content
//! store's ingest and, when the layer gets a snapshot, reads the same bytes through
//! decompression into [`layer::apply_with`]. Size and digest are checked by the ingest's commit
//! once the stream has ended; a mismatch removes the snapshot too.

use std::io::{self, Read, Write};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use berth_image::content::{ContentError, Writer};
use berth_image::import::ImageStore;
use berth_image::layer;
use bytes::{Buf, Bytes};
use reqwest::header::RANGE;
use reqwest::{Method, StatusCode};
use tokio::sync::mpsc;

use super::{cancelled, Ctx, LayerPlan, PullError};
use crate::client::{chain, error_of, Access};
use crate::progress::{short_id, Status};

/// How many times a broken download is resumed before the pull fails.
const RETRIES: u32 = 3;
/// Chunks in flight between the download and the blocking task.
const CHANNEL_DEPTH: usize = 64;

/// What a layer task did.
#[derive(Debug)]
pub(crate) struct Fetched {
    /// The layer's own snapshot (applied and checked, not yet committed), if it got one.
    pub snapshot: Option<String>,
    pub downloaded: bool,
}

/// What the download sends to the blocking task.
enum Piece {
    Data(Bytes),
    Done,
    Failed,
}

/// The key of layer `index`'s snapshot in the pull holding `lease`.
pub(crate) fn snapshot_key(lease: &str, index: usize) -> String {
    format!("{lease}-layer{index}")
}

/// Fetches layer `index` (unless its blob is here) and, if `needs_snapshot`, applies it into a
/// snapshot of its own. A failure tells the other layer tasks to stop.
pub(crate) async fn fetch_layer(
    ctx: &Ctx<'_>,
    index: usize,
    plan: &LayerPlan,
    needs_snapshot: bool,
) -> Result<Fetched, PullError> {
    if cancelled(&ctx.cancel) {
        return Err(PullError::Cancelled);
    }
    let result = fetch(ctx, index, plan, needs_snapshot).await;
    if result.is_err() {
        ctx.cancel.store(true, Ordering::Relaxed);
    }
    result
}

async fn fetch(
    ctx: &Ctx<'_>,
    index: usize,
    plan: &LayerPlan,
    needs_snapshot: bool,
) -> Result<Fetched, PullError> {
    let id = short_id(&plan.blob);
    let key = needs_snapshot.then(|| snapshot_key(&ctx.lease, index));
    let Some(writer) = open_writer(ctx, plan).await? else {
        // The blob is here: apply it from the store if it needs a snapshot.
        if let Some(key) = &key {
            blocking(ctx, plan, key.clone(), apply_from_blob).await?;
        }
        ctx.reporter.report(&id, Status::AlreadyExists, 0, 0);
        return Ok(Fetched {
            snapshot: key,
            downloaded: false,
        });
    };
    let offset = writer.offset();
    // A resumed download cannot be applied from its middle: it is applied from the blob after.
    let stream_into = key.clone().filter(|_| offset == 0);
    let (tx, rx) = mpsc::channel(CHANNEL_DEPTH);
    let store = Arc::clone(&ctx.store);
    let p = plan.clone();
    let receiver =
        tokio::task::spawn_blocking(move || receive(&store, &p, writer, rx, stream_into));
    let downloaded = download(ctx, plan, offset, tx).await;
    let received = receiver.await.map_err(|e| PullError::Task(e.to_string()))?;
    // A broken download also breaks the receiver's stream: the download's error is the cause.
    downloaded?;
    received?;
    if let (Some(key), true) = (&key, offset > 0) {
        blocking(ctx, plan, key.clone(), apply_from_blob).await?;
    }
    ctx.reporter
        .report(&id, Status::DownloadComplete, plan.size, plan.size);
    Ok(Fetched {
        snapshot: key,
        downloaded: true,
    })
}

/// The ingest writer for the layer's blob, or None if the blob is (or meanwhile got) stored.
/// While another pull writes the same blob, waits for it.
async fn open_writer(ctx: &Ctx<'_>, plan: &LayerPlan) -> Result<Option<Writer>, PullError> {
    let mut waiting = false;
    loop {
        let store = Arc::clone(&ctx.store);
        let blob = plan.blob.clone();
        let size = plan.size;
        let opened = tokio::task::spawn_blocking(move || {
            // One ref per blob, whoever pulls it: a later pull resumes an interrupted one.
            store
                .content
                .writer(&format!("pull-{blob}"), &blob, Some(size))
        })
        .await
        .map_err(|e| PullError::Task(e.to_string()))?;
        match opened {
            Ok(w) => return Ok(Some(w)),
            Err(ContentError::AlreadyExists(_)) => return Ok(None),
            Err(ContentError::InUse { .. }) => {
                if cancelled(&ctx.cancel) {
                    return Err(PullError::Cancelled);
                }
                if !waiting {
                    ctx.reporter
                        .report(&short_id(&plan.blob), Status::Waiting, 0, 0);
                    waiting = true;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// Runs `f(store, plan, key)` on a blocking thread.
async fn blocking(
    ctx: &Ctx<'_>,
    plan: &LayerPlan,
    key: String,
    f: fn(&ImageStore, &LayerPlan, &str) -> Result<(), PullError>,
) -> Result<(), PullError> {
    let store = Arc::clone(&ctx.store);
    let plan = plan.clone();
    tokio::task::spawn_blocking(move || f(&store, &plan, &key))
        .await
        .map_err(|e| PullError::Task(e.to_string()))?
}

/// Downloads the blob from byte `start` into `tx`, resuming after a broken connection. Ends
/// with `Done`, or `Failed` and the error.
async fn download(
    ctx: &Ctx<'_>,
    plan: &LayerPlan,
    start: u64,
    tx: mpsc::Sender<Piece>,
) -> Result<(), PullError> {
    let id = short_id(&plan.blob);
    let r = ctx.reference;
    let path = format!("/v2/{}/blobs/{}", r.path(), plan.blob);
    let blob_err = |message: String| PullError::Blob {
        digest: plan.blob.clone(),
        message,
    };
    let mut sent = start;
    let mut reported = 0u64;
    let step = (plan.size / 100).max(256 << 10);
    let mut attempt = 0;
    loop {
        let resume_at = sent;
        let resp = ctx
            .client
            .send(
                r.domain(),
                r.path(),
                Access::Pull,
                Method::GET,
                &path,
                |b| {
                    if resume_at > 0 {
                        b.header(RANGE, format!("bytes={resume_at}-"))
                    } else {
                        b
                    }
                },
            )
            .await;
        // Err(message) is worth a retry; fatal errors return at once.
        let outcome: Result<(), String> = match resp {
            Err(e) => Err(e.to_string()),
            Ok(resp) => {
                let mut skip = match resp.status() {
                    StatusCode::PARTIAL_CONTENT if resume_at > 0 => 0,
                    // The whole blob again (no Range support): drop what we have.
                    StatusCode::OK => resume_at,
                    _ => {
                        let err = error_of(Method::GET, &path, resp).await;
                        let _ = tx.send(Piece::Failed).await;
                        return Err(blob_err(format!("failed to fetch: {err}")));
                    }
                };
                let mut resp = resp;
                loop {
                    if cancelled(&ctx.cancel) {
                        let _ = tx.send(Piece::Failed).await;
                        return Err(PullError::Cancelled);
                    }
                    match resp.chunk().await {
                        Ok(Some(mut chunk)) => {
                            let drop_now = skip.min(chunk.len() as u64) as usize;
                            chunk.advance(drop_now);
                            skip -= drop_now as u64;
                            if chunk.is_empty() {
                                continue;
                            }
                            sent += chunk.len() as u64;
                            if sent > plan.size {
                                let _ = tx.send(Piece::Failed).await;
                                return Err(blob_err(format!(
                                    "the registry sent more than the manifest's {} bytes",
                                    plan.size
                                )));
                            }
                            if tx.send(Piece::Data(chunk)).await.is_err() {
                                // The receiver stopped (a bad layer): its error tells why.
                                return Ok(());
                            }
                            if sent - reported >= step {
                                reported = sent;
                                ctx.reporter
                                    .report(&id, Status::Downloading, sent, plan.size);
                            }
                        }
                        Ok(None) if sent < plan.size => {
                            break Err(format!("unexpected EOF: got {sent} of {} bytes", plan.size))
                        }
                        Ok(None) => break Ok(()),
                        Err(e) => {
                            break Err(format!("{}: got {sent} of {} bytes", chain(&e), plan.size))
                        }
                    }
                }
            }
        };
        match outcome {
            Ok(()) => {
                let _ = tx.send(Piece::Done).await;
                return Ok(());
            }
            Err(_) if attempt < RETRIES && !cancelled(&ctx.cancel) => {
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(200 * u64::from(attempt))).await;
            }
            Err(message) => {
                let _ = tx.send(Piece::Failed).await;
                return Err(blob_err(format!(
                    "download failed after {} attempts: {message}",
                    attempt + 1
                )));
            }
        }
    }
}

/// The blocking side: writes the stream into the ingest, applies it into snapshot `key` if
/// given, then commits the blob (size and digest checked). Any failure removes the snapshot; a
/// broken stream keeps the ingest for a resume, bad content drops it.
fn receive(
    store: &ImageStore,
    plan: &LayerPlan,
    writer: Writer,
    rx: mpsc::Receiver<Piece>,
    key: Option<String>,
) -> Result<(), PullError> {
    let mut reader = ChannelReader {
        rx,
        buf: Bytes::new(),
        writer,
        done: false,
        failed: false,
    };
    let applied = match &key {
        Some(key) => apply_into(store, plan, key, &mut reader),
        None => Ok(()),
    };
    let committed = match applied {
        Ok(()) => finish(reader, plan),
        Err(e) if reader.failed => Err(e),
        Err(e) => {
            // Bad content. If the blob is not what the manifest says (a corrupted blob), that
            // is the cause to report, rather than what it did to the decompressor or the tar.
            let rest = io::copy(&mut reader, &mut io::sink());
            let actual = reader.writer.written_digest();
            let err = match rest {
                Ok(_) if actual != plan.blob => PullError::Blob {
                    digest: plan.blob.clone(),
                    message: format!("digest mismatch: the content has digest {actual}"),
                },
                Err(_) if reader.failed => PullError::Cancelled,
                _ => e,
            };
            let _ = reader.writer.abort();
            Err(err)
        }
    };
    if committed.is_err() {
        if let Some(key) = &key {
            let _ = store.snapshots.remove(key);
        }
    }
    committed
}

/// Reads what follows the compressed stream (part of the blob too) and commits the blob.
fn finish(mut reader: ChannelReader, plan: &LayerPlan) -> Result<(), PullError> {
    let blob_err = |message: String| PullError::Blob {
        digest: plan.blob.clone(),
        message,
    };
    io::copy(&mut reader, &mut io::sink()).map_err(|e| blob_err(e.to_string()))?;
    reader.writer.commit().map(drop).map_err(|e| match e {
        ContentError::DigestMismatch { actual, .. } => {
            blob_err(format!("digest mismatch: the content has digest {actual}"))
        }
        ContentError::SizeMismatch { actual, .. } => blob_err(format!(
            "size mismatch: got {actual} of {} bytes",
            plan.size
        )),
        other => other.into(),
    })
}

/// Applies the stream into a new snapshot `key` and checks its diff_id. On an error that is
/// not the stream's, the ingest is dropped (the content is bad).
fn apply_into(
    store: &ImageStore,
    plan: &LayerPlan,
    key: &str,
    reader: &mut ChannelReader,
) -> Result<(), PullError> {
    store.snapshots.prepare(key, None)?;
    let upper = store.snapshots.upper_dir(key)?;
    let result = layer::apply_with(&mut *reader, &upper, store.whiteouts());
    if reader.failed {
        return Err(PullError::Cancelled);
    }
    let applied = result.map_err(|source| PullError::Layer {
        digest: plan.blob.clone(),
        source,
    })?;
    if applied.diff_id != plan.diff_id {
        return Err(PullError::DiffId {
            layer: plan.blob.clone(),
            expected: plan.diff_id.clone(),
            got: applied.diff_id,
        });
    }
    Ok(())
}

/// Applies the stored blob into a new snapshot `key` and checks its diff_id.
fn apply_from_blob(store: &ImageStore, plan: &LayerPlan, key: &str) -> Result<(), PullError> {
    store.snapshots.prepare(key, None)?;
    let result = (|| {
        let upper = store.snapshots.upper_dir(key)?;
        let file = store.content.open_blob(&plan.blob)?;
        let applied = layer::apply_with(file, &upper, store.whiteouts()).map_err(|source| {
            PullError::Layer {
                digest: plan.blob.clone(),
                source,
            }
        })?;
        if applied.diff_id != plan.diff_id {
            return Err(PullError::DiffId {
                layer: plan.blob.clone(),
                expected: plan.diff_id.clone(),
                got: applied.diff_id,
            });
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = store.snapshots.remove(key);
    }
    result
}

/// Reads the download from the channel, writing each chunk into the ingest as it arrives.
struct ChannelReader {
    rx: mpsc::Receiver<Piece>,
    buf: Bytes,
    writer: Writer,
    done: bool,
    /// The download broke or was cancelled.
    failed: bool,
}

impl Read for ChannelReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.buf.is_empty() {
            if self.done {
                return Ok(0);
            }
            match self.rx.blocking_recv() {
                Some(Piece::Data(chunk)) => {
                    self.writer.write_all(&chunk)?;
                    self.buf = chunk;
                }
                Some(Piece::Done) => self.done = true,
                Some(Piece::Failed) | None => {
                    self.failed = true;
                    return Err(io::Error::other("the download was interrupted"));
                }
            }
        }
        let n = out.len().min(self.buf.len());
        out[..n].copy_from_slice(&self.buf[..n]);
        self.buf.advance(n);
        Ok(n)
    }
}
