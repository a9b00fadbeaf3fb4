//! `image-summary SAVE.tar`: prints the summary of the first image of a `docker save` archive
//! as JSON (see `berth_tests::image_summary`).
//!
//! `image-summary --golden BUILDER SAVE.tar` prints a corpus golden record instead:
//! `{"builder": BUILDER, "image": SUMMARY}`; `image-summary --error BUILDER ERROR.txt` prints
//! `{"builder": BUILDER, "error": TEXT}` with the file's text (its trailing newlines removed).

use std::path::Path;
use std::process::ExitCode;

use berth_tests::image_summary::{summarize, Golden};

fn usage() -> ExitCode {
    eprintln!(
        "usage: image-summary SAVE.tar\n       image-summary --golden BUILDER SAVE.tar\n       image-summary --error BUILDER ERROR.txt"
    );
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let value = match args.as_slice() {
        [path] if !path.starts_with('-') => match summarize(Path::new(path)) {
            Ok(s) => serde_json::to_value(s),
            Err(e) => {
                eprintln!("image-summary: {path}: {e}");
                return ExitCode::FAILURE;
            }
        },
        ["--golden", builder, path] => match summarize(Path::new(path)) {
            Ok(s) => serde_json::to_value(Golden {
                builder: builder.to_string(),
                source: None,
                error: None,
                image: Some(s),
                expect: None,
                notes: None,
            }),
            Err(e) => {
                eprintln!("image-summary: {path}: {e}");
                return ExitCode::FAILURE;
            }
        },
        ["--error", builder, path] => match std::fs::read_to_string(path) {
            Ok(text) => serde_json::to_value(Golden {
                builder: builder.to_string(),
                source: None,
                error: Some(text.trim_end_matches('\n').to_string()),
                image: None,
                expect: None,
                notes: None,
            }),
            Err(e) => {
                eprintln!("image-summary: {path}: {e}");
                return ExitCode::FAILURE;
            }
        },
        _ => return usage(),
    };
    match value.and_then(|v| serde_json::to_string_pretty(&v)) {
        Ok(text) => {
            println!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("image-summary: {e}");
            ExitCode::FAILURE
        }
    }
}
