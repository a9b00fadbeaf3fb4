//! What a build says while it runs, as the classic builder's JSON stream carries it: text
//! (`{"stream": "..."}`), the final image id (`{"aux": {"ID": ...}}`) and pull progress (the
//! lines of `POST /images/create`, passed on as they are).

use serde_json::{json, Value};

/// One message of a build's output.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    /// Text (`Step 1/4 : FROM busybox\n`, a step's output).
    Stream(String),
    /// `{"aux": ...}`.
    Aux(Value),
    /// A progress line of a pull, passed on as it is (`{"status": ...}`).
    Progress(Value),
}

impl Message {
    /// The message as the classic builder's JSON line (without its newline).
    pub fn to_json(&self) -> Value {
        match self {
            Message::Stream(s) => json!({ "stream": s }),
            Message::Aux(v) => json!({ "aux": v }),
            Message::Progress(v) => v.clone(),
        }
    }
}

/// Where a build's messages go (the client's response, or nowhere).
pub struct Output {
    sink: Box<dyn Fn(Message) + Send + Sync>,
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
        self.send(Message::Stream(text.to_string()));
    }

    /// `Step N/M : INSTRUCTION`, as the classic builder writes it, in one message with its
    /// newline (the classic builder sends the newline apart; with stages running in parallel,
    /// another stage's line could come between the two).
    pub fn step(&self, n: usize, total: usize, original: &str) {
        self.stream(&format!("Step {n}/{total} : {original}\n"));
    }

    /// ` ---> <short id>`.
    pub fn arrow(&self, text: &str) {
        self.stream(&format!(" ---> {text}\n"));
    }
}
