//! One SPDY/3.1 server connection over an upgraded HTTP connection: a reader task that
//! decodes the client's frames (new streams, data, resets, settings, pings, window updates,
//! GOAWAY) and a writer task that owns the outgoing header compression.
//!
//! Flow control: received data is buffered per stream up to [`RECV_BUFFER`] bytes (past that
//! the reader stops reading the socket, which pushes back on the client through TCP) and a
//! WINDOW_UPDATE for the stream and for the connection goes out as the handler consumes it.
//! Sending honours the client's windows (64 KiB initial, SETTINGS and WINDOW_UPDATE) once the
//! client shows it does flow control by sending either: Go's spdystream, which kubectl,
//! crictl and the API server use, never sends WINDOW_UPDATE and ignores the ones it receives,
//! so holding it to a 64 KiB window would stall every session after 64 KiB of output.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot, Notify, Semaphore};
use tokio::task::JoinHandle;

use super::frame::{self, Decoder, Encoder, Frame, FrameError};
use super::headers::Header;

/// The initial send window of a stream (SPDY/3.1 default).
pub const INITIAL_WINDOW: i64 = 64 * 1024;
/// Received bytes buffered per stream before the reader stops reading the socket.
pub const RECV_BUFFER: usize = 256 * 1024;
/// Streams open at once; more are refused.
pub const MAX_STREAMS: usize = 256;
/// The largest DATA frame sent.
const CHUNK: usize = 16 * 1024;

/// Why a stream or the connection cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConnError {
    #[error("SPDY connection closed")]
    Closed,
    #[error("SPDY stream {0} was reset")]
    Reset(u32),
    #[error(transparent)]
    Frame(#[from] FrameError),
    #[error("SPDY protocol error: {0}")]
    Protocol(&'static str),
    #[error("SPDY connection: {0}")]
    Io(#[from] std::io::Error),
    #[error("SPDY connection idle for {0:?}")]
    Idle(Duration),
}

enum Out {
    Frame(Frame),
    Close {
        status: u32,
        done: oneshot::Sender<()>,
    },
}

struct StreamEntry {
    data_tx: Option<mpsc::UnboundedSender<(Bytes, u32)>>,
    buffer: Arc<Semaphore>,
    send_window: i64,
    local_fin: bool,
    remote_fin: bool,
}

struct State {
    streams: HashMap<u32, StreamEntry>,
    conn_send_window: i64,
    initial_send_window: i64,
    enforce: bool,
    closed: bool,
    going_away: bool,
    last_remote_id: u32,
}

struct Shared {
    state: Mutex<State>,
    window_changed: Notify,
    out: mpsc::Sender<Out>,
    started: Instant,
    /// Milliseconds from `started` to the last write.
    last_write: AtomicU64,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    async fn send(&self, frame: Frame) -> Result<(), ConnError> {
        self.out
            .send(Out::Frame(frame))
            .await
            .map_err(|_| ConnError::Closed)
    }

    /// Forgets a stream once both sides are done with it.
    fn retire(&self, st: &mut State, id: u32) {
        if st
            .streams
            .get(&id)
            .is_some_and(|e| e.local_fin && e.remote_fin)
        {
            st.streams.remove(&id);
        }
    }
}

/// A stream the client opened, not yet answered.
pub struct IncomingStream {
    pub id: u32,
    pub headers: Vec<Header>,
    rx: mpsc::UnboundedReceiver<(Bytes, u32)>,
    buffer: Arc<Semaphore>,
    shared: Arc<Shared>,
}

impl IncomingStream {
    /// The first value of a header.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Accepts the stream (SYN_REPLY) and returns its two halves.
    pub async fn accept(self) -> Result<(StreamReader, StreamWriter), ConnError> {
        self.shared
            .send(Frame::SynReply {
                stream_id: self.id,
                flags: 0,
                headers: Vec::new(),
            })
            .await?;
        let writer = StreamWriter {
            id: self.id,
            shared: self.shared.clone(),
        };
        let reader = StreamReader {
            id: self.id,
            rx: self.rx,
            buffer: self.buffer,
            shared: self.shared,
        };
        Ok((reader, writer))
    }

    /// Refuses the stream (RST_STREAM REFUSED_STREAM).
    pub async fn refuse(self) {
        self.shared.lock().streams.remove(&self.id);
        let _ = self
            .shared
            .send(Frame::RstStream {
                stream_id: self.id,
                status: frame::REFUSED_STREAM,
            })
            .await;
    }
}

/// What the client sends on a stream.
pub struct StreamReader {
    id: u32,
    rx: mpsc::UnboundedReceiver<(Bytes, u32)>,
    buffer: Arc<Semaphore>,
    shared: Arc<Shared>,
}

impl StreamReader {
    /// The next chunk, `None` once the client half-closed the stream (or reset it, or the
    /// connection ended). Each chunk read opens the client's windows by its size.
    pub async fn read(&mut self) -> Option<Bytes> {
        let (data, permits) = self.rx.recv().await?;
        self.buffer.add_permits(permits as usize);
        if !data.is_empty() {
            let delta = data.len() as u32;
            for stream_id in [self.id, 0] {
                let _ = self
                    .shared
                    .out
                    .try_send(Out::Frame(Frame::WindowUpdate { stream_id, delta }));
            }
        }
        Some(data)
    }

    pub fn id(&self) -> u32 {
        self.id
    }
}

/// The server's side of a stream.
#[derive(Clone)]
pub struct StreamWriter {
    id: u32,
    shared: Arc<Shared>,
}

impl StreamWriter {
    pub fn id(&self) -> u32 {
        self.id
    }

    /// Sends data, in frames of at most 16 KiB, within the client's windows when it keeps them.
    pub async fn write(&self, mut data: &[u8]) -> Result<(), ConnError> {
        while !data.is_empty() {
            let notified = self.shared.window_changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let n = {
                let mut st = self.shared.lock();
                if st.closed {
                    return Err(ConnError::Closed);
                }
                let enforce = st.enforce;
                let conn_window = st.conn_send_window;
                let entry = match st.streams.get_mut(&self.id) {
                    Some(e) if !e.local_fin => e,
                    _ => return Err(ConnError::Reset(self.id)),
                };
                if !enforce {
                    data.len().min(CHUNK)
                } else {
                    let avail = entry.send_window.min(conn_window);
                    if avail <= 0 {
                        0
                    } else {
                        let n = data.len().min(CHUNK).min(avail as usize);
                        entry.send_window -= n as i64;
                        st.conn_send_window -= n as i64;
                        n
                    }
                }
            };
            if n == 0 {
                notified.await;
                continue;
            }
            let (chunk, rest) = data.split_at(n);
            self.shared
                .send(Frame::Data {
                    stream_id: self.id,
                    flags: 0,
                    data: Bytes::copy_from_slice(chunk),
                })
                .await?;
            data = rest;
        }
        Ok(())
    }

    /// Half-closes the stream (an empty DATA frame with FIN).
    pub async fn finish(&self) -> Result<(), ConnError> {
        {
            let mut st = self.shared.lock();
            match st.streams.get_mut(&self.id) {
                Some(e) if !e.local_fin => e.local_fin = true,
                _ => return Ok(()),
            }
            self.shared.retire(&mut st, self.id);
        }
        self.shared
            .send(Frame::Data {
                stream_id: self.id,
                flags: frame::FLAG_FIN,
                data: Bytes::new(),
            })
            .await
    }

    /// Forgets the stream without a frame (kubelet's `RemoveStreams`): what the client sends
    /// on it later is dropped. For streams whose work is over while the client may never
    /// half-close them.
    pub fn release(&self) {
        self.shared.lock().streams.remove(&self.id);
        self.shared.window_changed.notify_waiters();
    }

    /// Resets the stream.
    pub async fn reset(&self, status: u32) {
        self.shared.lock().streams.remove(&self.id);
        self.shared.window_changed.notify_waiters();
        let _ = self
            .shared
            .send(Frame::RstStream {
                stream_id: self.id,
                status,
            })
            .await;
    }
}

/// The connection: its tasks run until the client goes or [`Session::close`].
pub struct Session {
    shared: Arc<Shared>,
    reader: JoinHandle<()>,
    writer: JoinHandle<()>,
}

/// Starts serving SPDY on `io`; new streams arrive on the receiver, which ends with the
/// connection. A connection with nothing read or written for `idle` is closed (GOAWAY).
pub fn start<IO>(io: IO, idle: Duration) -> (Session, mpsc::Receiver<IncomingStream>)
where
    IO: AsyncRead + AsyncWrite + Send + 'static,
{
    let (r, w) = tokio::io::split(io);
    let (out_tx, out_rx) = mpsc::channel(256);
    let (new_tx, new_rx) = mpsc::channel(16);
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            streams: HashMap::new(),
            conn_send_window: INITIAL_WINDOW,
            initial_send_window: INITIAL_WINDOW,
            enforce: false,
            closed: false,
            going_away: false,
            last_remote_id: 0,
        }),
        window_changed: Notify::new(),
        out: out_tx,
        started: Instant::now(),
        last_write: AtomicU64::new(0),
    });
    let reader = tokio::spawn(read_loop(r, shared.clone(), new_tx, idle));
    let writer = tokio::spawn(write_loop(w, out_rx, shared.clone()));
    (
        Session {
            shared,
            reader,
            writer,
        },
        new_rx,
    )
}

impl Session {
    /// Says GOAWAY, flushes what is queued and closes the connection, giving the client a
    /// moment to close its side first.
    pub async fn close(self) {
        let (done, wait) = oneshot::channel();
        let queued = self
            .shared
            .out
            .send(Out::Close {
                status: frame::GOAWAY_OK,
                done,
            })
            .await;
        if queued.is_ok() {
            let _ = tokio::time::timeout(Duration::from_secs(10), wait).await;
        }
        let mut reader = self.reader;
        if tokio::time::timeout(Duration::from_secs(2), &mut reader)
            .await
            .is_err()
        {
            reader.abort();
        }
        self.writer.abort();
    }
}

async fn read_loop<R: AsyncRead + Unpin>(
    mut r: R,
    shared: Arc<Shared>,
    new_tx: mpsc::Sender<IncomingStream>,
    idle: Duration,
) {
    let mut dec = Decoder::new();
    let mut buf = BytesMut::with_capacity(16 * 1024);
    let mut last_read = Instant::now();
    let result: Result<(), ConnError> = async {
        loop {
            while let Some(frame) = dec.decode(&mut buf)? {
                handle(frame, &shared, &new_tx).await?;
            }
            match tokio::time::timeout(idle, r.read_buf(&mut buf)).await {
                Ok(read) => {
                    if read? == 0 {
                        return Ok(());
                    }
                    last_read = Instant::now();
                }
                Err(_) => {
                    let wrote = Duration::from_millis(shared.last_write.load(Ordering::Relaxed));
                    let last = last_read.max(shared.started + wrote);
                    if last.elapsed() >= idle {
                        return Err(ConnError::Idle(idle));
                    }
                }
            }
        }
    }
    .await;
    if let Err(e) = result {
        tracing::debug!("SPDY connection: {e}");
        if !matches!(e, ConnError::Io(_)) {
            let status = if matches!(e, ConnError::Idle(_)) {
                frame::GOAWAY_OK
            } else {
                frame::GOAWAY_PROTOCOL_ERROR
            };
            let (done, _) = oneshot::channel();
            let _ = shared.out.try_send(Out::Close { status, done });
        }
    }
    let mut st = shared.lock();
    st.closed = true;
    for e in st.streams.values_mut() {
        e.data_tx = None;
    }
    drop(st);
    shared.window_changed.notify_waiters();
}

async fn handle(
    frame: Frame,
    shared: &Arc<Shared>,
    new_tx: &mpsc::Sender<IncomingStream>,
) -> Result<(), ConnError> {
    match frame {
        Frame::SynStream {
            stream_id,
            flags,
            headers,
            ..
        } => {
            let refuse = {
                let mut st = shared.lock();
                if stream_id % 2 == 0 || stream_id <= st.last_remote_id {
                    return Err(ConnError::Protocol("SYN_STREAM with a bad stream id"));
                }
                st.last_remote_id = stream_id;
                st.going_away || st.streams.len() >= MAX_STREAMS
            };
            if refuse {
                return shared
                    .send(Frame::RstStream {
                        stream_id,
                        status: frame::REFUSED_STREAM,
                    })
                    .await;
            }
            let (tx, rx) = mpsc::unbounded_channel();
            let buffer = Arc::new(Semaphore::new(RECV_BUFFER));
            let remote_fin = flags & frame::FLAG_FIN != 0;
            let initial = {
                let st = shared.lock();
                st.initial_send_window
            };
            shared.lock().streams.insert(
                stream_id,
                StreamEntry {
                    data_tx: (!remote_fin).then_some(tx),
                    buffer: buffer.clone(),
                    send_window: initial,
                    local_fin: flags & frame::FLAG_UNIDIRECTIONAL != 0,
                    remote_fin,
                },
            );
            let incoming = IncomingStream {
                id: stream_id,
                headers,
                rx,
                buffer,
                shared: shared.clone(),
            };
            if let Err(mpsc::error::SendError(s)) = new_tx.send(incoming).await {
                s.refuse().await;
            }
        }
        Frame::Data {
            stream_id,
            flags,
            data,
        } => {
            let target = {
                let st = shared.lock();
                st.streams
                    .get(&stream_id)
                    .and_then(|e| e.data_tx.clone().map(|tx| (tx, e.buffer.clone())))
            };
            // Data for a stream gone or half-closed by the client is dropped (as spdystream).
            let Some((tx, buffer)) = target else {
                return Ok(());
            };
            if !data.is_empty() {
                let permits = data.len().min(RECV_BUFFER) as u32;
                match buffer.clone().acquire_many_owned(permits).await {
                    Ok(p) => p.forget(),
                    Err(_) => return Ok(()),
                }
                if tx.send((data, permits)).is_err() {
                    // The handler dropped its reader: nothing will give these back.
                    buffer.add_permits(permits as usize);
                }
            }
            if flags & frame::FLAG_FIN != 0 {
                let mut st = shared.lock();
                if let Some(e) = st.streams.get_mut(&stream_id) {
                    e.remote_fin = true;
                    e.data_tx = None;
                }
                shared.retire(&mut st, stream_id);
            }
        }
        Frame::RstStream { stream_id, .. } => {
            shared.lock().streams.remove(&stream_id);
            shared.window_changed.notify_waiters();
        }
        Frame::Settings { entries, .. } => {
            let mut st = shared.lock();
            for (_, id, value) in entries {
                if id == frame::SETTINGS_INITIAL_WINDOW_SIZE && value <= 0x7fff_ffff {
                    let delta = i64::from(value) - st.initial_send_window;
                    st.initial_send_window = i64::from(value);
                    for e in st.streams.values_mut() {
                        e.send_window += delta;
                    }
                    st.enforce = true;
                }
            }
            drop(st);
            shared.window_changed.notify_waiters();
        }
        Frame::WindowUpdate { stream_id, delta } => {
            let mut st = shared.lock();
            st.enforce = true;
            let delta = i64::from(delta);
            if stream_id == 0 {
                st.conn_send_window = (st.conn_send_window + delta).min(i64::from(i32::MAX));
            } else if let Some(e) = st.streams.get_mut(&stream_id) {
                e.send_window = (e.send_window + delta).min(i64::from(i32::MAX));
            }
            drop(st);
            shared.window_changed.notify_waiters();
        }
        Frame::Ping { id } => {
            // The client's pings are odd; even ones would be answers to the server's.
            if id % 2 == 1 {
                shared.send(Frame::Ping { id }).await?;
            }
        }
        Frame::GoAway { .. } => {
            shared.lock().going_away = true;
        }
        Frame::SynReply { .. } | Frame::Headers { .. } | Frame::Unknown { .. } => {}
    }
    Ok(())
}

async fn write_loop<W: AsyncWrite + Unpin>(
    mut w: W,
    mut rx: mpsc::Receiver<Out>,
    shared: Arc<Shared>,
) {
    let mut enc = Encoder::new();
    let mut buf = Vec::with_capacity(32 * 1024);
    while let Some(first) = rx.recv().await {
        let mut next = Some(first);
        let mut close = None;
        while let Some(out) = next.take() {
            match out {
                Out::Frame(f) => {
                    if let Err(e) = enc.encode(&f, &mut buf) {
                        tracing::debug!("SPDY encode: {e}");
                    }
                }
                Out::Close { status, done } => {
                    let last_good = shared.lock().last_remote_id;
                    let _ = enc.encode(&Frame::GoAway { last_good, status }, &mut buf);
                    close = Some(done);
                    break;
                }
            }
            if buf.len() < 64 * 1024 {
                next = rx.try_recv().ok();
            }
        }
        let written = async {
            w.write_all(&buf).await?;
            w.flush().await
        }
        .await;
        buf.clear();
        if written.is_ok() {
            let ms = shared
                .started
                .elapsed()
                .as_millis()
                .min(u128::from(u64::MAX)) as u64;
            shared.last_write.store(ms, Ordering::Relaxed);
        }
        if let Some(done) = close {
            let _ = w.shutdown().await;
            let _ = done.send(());
            break;
        }
        if written.is_err() {
            break;
        }
    }
    let mut st = shared.lock();
    st.closed = true;
    drop(st);
    shared.window_changed.notify_waiters();
}
