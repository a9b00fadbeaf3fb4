//! The build's response stream shown as the docker CLI shows the classic builder's (plain
//! text, or only the id with `-q`), or as a live view on a terminal ([`super::tty`]).

use std::io::{self, Write};
use std::time::{Duration, Instant};

use anyhow::{anyhow, Result};
use berth_api::client::BodyStream;
use hyper::body::Incoming;
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

use super::tty::{Model, View};
use crate::fmt::human_size_4;
use crate::status;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Plain,
    Quiet,
    Tty,
}

/// How long the first message waits for the context's size to be known (so
/// "Sending build context" comes first, as with docker).
const SENT_WAIT: Duration = Duration::from_secs(2);

/// One message of the stream.
enum Msg {
    /// Text, and the step it belongs to when berthd says (`"berthStep"`).
    Stream(String, Option<usize>),
    /// A pull progress line: id, and the text docker shows for it without a terminal
    /// (`None`: a progress bar, not shown then).
    Progress(String, Option<String>),
    Aux(Value),
    Error(String, i64),
}

fn parse(v: &Value) -> Msg {
    let text = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    if let Some(err) = v.get("errorDetail").or_else(|| v.get("error")) {
        let message = err
            .get("message")
            .and_then(Value::as_str)
            .or_else(|| err.as_str())
            .or_else(|| v.get("error").and_then(Value::as_str))
            .unwrap_or("unknown error")
            .to_string();
        let code = err.get("code").and_then(Value::as_i64).unwrap_or(0);
        return Msg::Error(message, code);
    }
    if let Some(a) = v.get("aux") {
        return Msg::Aux(a.clone());
    }
    if let Some(s) = v.get("stream").and_then(Value::as_str) {
        let step = v
            .get("berthStep")
            .and_then(Value::as_u64)
            .and_then(|n| usize::try_from(n).ok());
        return Msg::Stream(s.to_string(), step);
    }
    let (id, status, progress) = (text("id"), text("status"), text("progress"));
    let bar = v.get("progressDetail").is_some_and(|d| {
        d.get("current").and_then(Value::as_i64).unwrap_or(0) > 0
            || d.get("total").and_then(Value::as_i64).unwrap_or(0) > 0
    });
    let shown = if bar {
        None
    } else if !progress.is_empty() {
        Some(format!("{status} {progress}"))
    } else {
        Some(status)
    };
    Msg::Progress(id, shown)
}

/// Where the messages go.
struct Sink {
    mode: Mode,
    start: Instant,
    model: Model,
    view: View<io::Stdout>,
    /// `-q`: the progress and the output, shown only on an error.
    progress_buf: String,
    build_buf: String,
    image_id: String,
}

impl Sink {
    fn context_sent(&mut self, bytes: u64) -> io::Result<()> {
        let text = format!(
            "Sending build context to Docker daemon {:>8}\r\r\n",
            human_size_4(bytes as f64)
        );
        match self.mode {
            Mode::Plain => {
                let mut out = io::stdout().lock();
                out.write_all(text.as_bytes())?;
                out.flush()
            }
            Mode::Quiet => {
                self.progress_buf.push_str(&text);
                Ok(())
            }
            Mode::Tty => {
                self.model.context_sent(bytes, self.start.elapsed());
                Ok(())
            }
        }
    }

    fn message(&mut self, m: Msg) -> io::Result<()> {
        let now = self.start.elapsed();
        match (m, self.mode) {
            (Msg::Aux(a), _) => {
                if let Some(id) = a.get("ID").and_then(Value::as_str) {
                    self.image_id = id.to_string();
                    self.model.image_id(id);
                }
            }
            (Msg::Stream(s, _), Mode::Quiet) => self.build_buf.push_str(&s),
            (Msg::Stream(s, _), Mode::Plain) => {
                let mut out = io::stdout().lock();
                out.write_all(s.as_bytes())?;
                out.flush()?;
            }
            (Msg::Stream(s, step), Mode::Tty) => self.model.stream(&s, step, now),
            (Msg::Progress(id, Some(text)), Mode::Plain) => {
                let mut out = io::stdout().lock();
                if !id.is_empty() {
                    write!(out, "{id}: ")?;
                }
                writeln!(out, "{text}")?;
                out.flush()?;
            }
            (Msg::Progress(id, shown), Mode::Tty) => {
                self.model
                    .progress(&id, shown.as_deref().unwrap_or("…"), now);
            }
            (Msg::Progress(..), _) | (Msg::Error(..), _) => {}
        }
        Ok(())
    }

    fn draw(&mut self) -> io::Result<()> {
        if self.mode == Mode::Tty {
            let (rows, cols) = crate::term::size().unwrap_or((24, 80));
            let lines = self
                .model
                .lines(self.start.elapsed(), cols.into(), rows.into());
            self.view.draw(&lines)?;
        }
        Ok(())
    }

    /// The end of a build that succeeded; the image id (`-q`: what was printed).
    fn succeeded(mut self) -> io::Result<String> {
        match self.mode {
            Mode::Quiet => {
                let mut out = io::stdout().lock();
                out.write_all(self.build_buf.as_bytes())?;
                out.flush()?;
                return Ok(self.build_buf);
            }
            Mode::Tty => {
                self.model.finish(self.start.elapsed());
                self.draw()?;
                for l in self.model.summary() {
                    self.view.println(&l)?;
                }
            }
            Mode::Plain => {}
        }
        Ok(self.image_id)
    }

    /// The end of a build that failed with `message`.
    fn failed(mut self, message: &str) -> io::Result<()> {
        match self.mode {
            Mode::Quiet => {
                let mut err = io::stderr().lock();
                write!(err, "{}{}", self.progress_buf, self.build_buf)?;
                err.flush()?;
            }
            Mode::Tty => {
                self.model.fail(message, self.start.elapsed());
                self.draw()?;
                for l in self.model.failure() {
                    self.view.println(&l)?;
                }
            }
            Mode::Plain => {}
        }
        Ok(())
    }
}

/// Shows the response of `POST /build`; `sent` tells the size of the context the CLI packed.
/// Returns the image id; an error of the build is a [`crate::StatusError`] with its code.
pub async fn run(
    resp: hyper::Response<Incoming>,
    mut sent: Option<oneshot::Receiver<io::Result<u64>>>,
    mode: Mode,
) -> Result<String> {
    let (tx, mut rx) = mpsc::channel::<Result<Value>>(64);
    let reader = tokio::spawn(async move {
        let mut body = BodyStream::new(resp);
        loop {
            let next = body.next_json::<Value>().await;
            let end = !matches!(next, Ok(Some(_)));
            let item = match next {
                Ok(Some(v)) => Ok(v),
                Ok(None) => break,
                Err(e) => Err(anyhow!(e)),
            };
            if tx.send(item).await.is_err() || end {
                break;
            }
        }
    });
    let mut sink = Sink {
        mode,
        start: Instant::now(),
        model: Model::new(),
        view: View::new(io::stdout()),
        progress_buf: String::new(),
        build_buf: String::new(),
        image_id: String::new(),
    };
    let mut ticker = tokio::time::interval(Duration::from_millis(100));
    let mut pack_error: Option<io::Error> = None;
    let result = loop {
        tokio::select! {
            r = async {
                match sent.as_mut() {
                    Some(rx) => rx.await,
                    None => std::future::pending().await,
                }
            } => {
                sent = None;
                match r {
                    Ok(Ok(n)) => sink.context_sent(n)?,
                    Ok(Err(e)) => pack_error = Some(e),
                    Err(_) => {}
                }
            }
            m = rx.recv() => {
                let Some(m) = m else { break Ok(()) };
                let v = m?;
                if let Some(pending) = sent.take() {
                    if let Ok(Ok(r)) = tokio::time::timeout(SENT_WAIT, pending).await {
                        match r {
                            Ok(n) => sink.context_sent(n)?,
                            Err(e) => pack_error = Some(e),
                        }
                    }
                }
                match parse(&v) {
                    Msg::Error(message, code) => break Err((message, code)),
                    m => sink.message(m)?,
                }
            }
            _ = ticker.tick(), if mode == Mode::Tty => sink.draw()?,
        }
    };
    reader.abort();
    if let Some(e) = pack_error {
        let message = format!("error checking context: {e}");
        sink.failed(&message)?;
        return Err(status(1, message));
    }
    match result {
        Ok(()) => Ok(sink.succeeded()?),
        Err((message, code)) => {
            sink.failed(&message)?;
            Err(status(if code > 0 { code as i32 } else { 1 }, message))
        }
    }
}
