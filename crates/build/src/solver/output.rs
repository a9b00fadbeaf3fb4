//! What a build says while it runs, as the classic builder's JSON stream carries it: text
//! (`{"stream": "..."}`), the final image id (`{"aux": {"ID": ...}}`) and pull progress (the
//! lines of `POST /images/create`, passed on as they are).
//!
//! Stages run in parallel, so the text of two steps may interleave. Each text knows the step
//! its thread was running (the last [`Output::step`] called on that thread), which a client
//! that asks for it gets as `"berthStep": N` beside `"stream"` ([`Message::to_json_with_step`]);
//! the classic stream has no such field.

use std::collections::HashMap;
use std::sync::Mutex;
use std::thread::ThreadId;

use serde_json::{json, Value};

/// One message of a build's output.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    /// Text (`Step 1/4 : FROM busybox\n`, a step's output), and the number of the step it
    /// belongs to, when it is known.
    Stream { text: String, step: Option<usize> },
    /// `{"aux": ...}`.
    Aux(Value),
    /// A progress line of a pull, passed on as it is (`{"status": ...}`).
    Progress(Value),
}

impl Message {
    /// The message as the classic builder's JSON line (without its newline).
    pub fn to_json(&self) -> Value {
        match self {
            Message::Stream { text, .. } => json!({ "stream": text }),
            Message::Aux(v) => json!({ "aux": v }),
            Message::Progress(v) => v.clone(),
        }
    }

    /// [`Message::to_json`], a text with its step number (`"berthStep"`) when known.
    pub fn to_json_with_step(&self) -> Value {
        match self {
            Message::Stream {
                text,
                step: Some(n),
            } => json!({ "stream": text, "berthStep": n }),
            other => other.to_json(),
        }
    }
}

/// Where a build's messages go (the client's response, or nowhere).
pub struct Output {
    sink: Box<dyn Fn(Message) + Send + Sync>,
    /// The step each thread of the build is running.
    steps: Mutex<HashMap<ThreadId, usize>>,
}

impl std::fmt::Debug for Output {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Output")
    }
}

impl Output {
    pub fn new(sink: impl Fn(Message) + Send + Sync + 'static) -> Output {
        Output {
            sink: Box::new(sink),
            steps: Mutex::new(HashMap::new()),
        }
    }

    /// An output that drops everything.
    pub fn discard() -> Output {
        Output::new(|_| {})
    }

    pub fn send(&self, m: Message) {
        (self.sink)(m);
    }

    pub fn stream(&self, text: &str) {
        let step = self
            .steps
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&std::thread::current().id())
            .copied();
        self.send(Message::Stream {
            text: text.to_string(),
            step,
        });
    }

    /// `Step N/M : INSTRUCTION`, as the classic builder writes it, in one message with its
    /// newline (the classic builder sends the newline apart; with stages running in parallel,
    /// another stage's line could come between the two). What this thread says next belongs
    /// to step `n`.
    pub fn step(&self, n: usize, total: usize, original: &str) {
        self.steps
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(std::thread::current().id(), n);
        self.stream(&format!("Step {n}/{total} : {original}\n"));
    }

    /// ` ---> <short id>`.
    pub fn arrow(&self, text: &str) {
        self.stream(&format!(" ---> {text}\n"));
    }
}
