//! Error and debug output in runc's formats: logrus text or JSON lines, to stderr and `--log`.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Text,
    Json,
}

pub struct Logger {
    file: Option<PathBuf>,
    format: Format,
    debug: bool,
}

impl Logger {
    pub fn new(file: Option<PathBuf>, format: Format, debug: bool) -> Self {
        Self {
            file,
            format,
            debug,
        }
    }

    fn line(&self, level: &str, msg: &str) -> String {
        let time = berth_runtime::state::rfc3339(std::time::SystemTime::now());
        match self.format {
            Format::Json => {
                serde_json::json!({"level": level, "msg": msg, "time": time}).to_string()
            }
            Format::Text => format!("time={time:?} level={level} msg={msg:?}"),
        }
    }

    fn to_file(&self, line: &str) {
        if let Some(path) = &self.file {
            if let Ok(mut f) = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
            {
                let _ = writeln!(f, "{line}");
            }
        }
    }

    pub fn error(&self, msg: &str) {
        let line = self.line("error", msg);
        self.to_file(&line);
        let stderr = std::io::stderr();
        if stderr.is_terminal() {
            eprintln!("ERRO[0000] {msg}");
        } else {
            eprintln!("{line}");
        }
    }

    pub fn debug(&self, msg: &str) {
        if self.debug {
            let line = self.line("debug", msg);
            self.to_file(&line);
            if self.file.is_none() {
                eprintln!("{line}");
            }
        }
    }
}
