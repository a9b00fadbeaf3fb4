//! The build corpus (`crates/build/tests/corpus`): every case built by berthd through the
//! docker CLI, its image saved and summarised, and compared with the golden that Docker's
//! classic builder (dockerd 20.10) made of it: the config, the layers, each layer's files with
//! mode, owner, size, link and content. Cases that must fail must fail with the classic
//! builder's message.
//!
//! The cases Berth's builder does not match yet are listed in [`KNOWN`] with the reason: the
//! test fails if one of them starts to match (take it off the list) or if any other case
//! differs.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions unwrap too

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use berth_tests::image_summary::{check, compare, summarize, Golden};
use common::{skip, Daemon};

/// Cases whose image or error differs from the golden today, and why.
const KNOWN: &[(&str, &str)] = &[
    (
        "48-error-unknown-instruction",
        "the parse error is BuildKit's `dockerfile parse error on line 2:`; the classic builder \
         says `dockerfile parse error line 2:`",
    ),
    (
        "64-bk-dockerfile-dockerignore",
        "the docker CLI filters the context with `.dockerignore` before it sends it to a classic \
         builder, so `app.Dockerfile.dockerignore` cannot bring `y.txt` back (berthd honours it \
         when the context holds the file)",
    ),
];

/// What `case.json` says.
#[derive(Debug, Default, serde::Deserialize)]
struct Case {
    #[serde(default)]
    dockerfile: Option<String>,
    #[serde(default)]
    buildargs: BTreeMap<String, String>,
    #[serde(default)]
    target: Option<String>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    expect_error: Option<String>,
}

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../build/tests/corpus")
}

/// The base image as the goldens had it: the busybox fixture with Docker Hub busybox's config.
fn import_base(d: &Daemon) {
    d.busybox_with_changes(
        "busybox:latest",
        &[
            "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "CMD [\"sh\"]",
        ],
    );
}

/// Builds one case; what differs from its golden (empty: it matches).
fn run_case(d: &Daemon, dir: &Path) -> Vec<String> {
    let name = dir.file_name().unwrap().to_string_lossy().into_owned();
    let case: Case =
        serde_json::from_slice(&std::fs::read(dir.join("case.json")).unwrap()).unwrap();
    let golden: Option<Golden> = std::fs::read(dir.join("golden.json"))
        .ok()
        .map(|b| serde_json::from_slice(&b).unwrap());
    let tag = format!("corpus-{}", name.to_ascii_lowercase());
    let mut args: Vec<String> = vec!["build".into(), "-t".into(), tag.clone()];
    if let Some(f) = &case.dockerfile {
        args.extend(["-f".into(), dir.join(f).display().to_string()]);
    }
    for (k, v) in &case.buildargs {
        args.extend(["--build-arg".into(), format!("{k}={v}")]);
    }
    for (k, v) in &case.labels {
        args.extend(["--label".into(), format!("{k}={v}")]);
    }
    if let Some(t) = &case.target {
        args.extend(["--target".into(), t.clone()]);
    }
    args.push(dir.display().to_string());
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut cmd = d.docker_command(&argv);
    cmd.env("DOCKER_BUILDKIT", "0");
    let out = berth_tests::run_with_timeout(&mut cmd, Duration::from_secs(120));
    let expected_error = golden
        .as_ref()
        .and_then(|g| g.error.clone())
        .or(case.expect_error.clone());
    if let Some(error) = expected_error {
        if out.status.success() {
            return vec![format!("built, but the golden is the error {error:?}")];
        }
        let message = error
            .lines()
            .last()
            .unwrap_or_default()
            .trim_start_matches("Error response from daemon: ")
            .to_string();
        if out.stderr.contains(&message) {
            return Vec::new();
        }
        return vec![format!(
            "error {:?}, the golden's {message:?}",
            out.stderr.trim()
        )];
    }
    if !out.status.success() {
        return vec![format!("build failed: {}", out.stderr.trim())];
    }
    let saved = d.dir.join(format!("{tag}.tar"));
    let save = d.docker(&["save", "-o", saved.to_str().unwrap(), &tag]);
    if !save.status.success() {
        return vec![format!(
            "save failed: {}",
            String::from_utf8_lossy(&save.stderr)
        )];
    }
    let summary = summarize(&saved).unwrap();
    let _ = std::fs::remove_file(&saved);
    let _ = d.docker(&["rmi", "-f", &tag]);
    match golden {
        Some(Golden {
            image: Some(image), ..
        }) => compare(&image, &summary),
        Some(Golden {
            expect: Some(expect),
            ..
        }) => check(&expect, &summary),
        _ => Vec::new(),
    }
}

#[test]
fn the_corpus_builds_the_images_dockers_classic_builder_made() {
    if skip() {
        return;
    }
    let d = Daemon::start();
    import_base(&d);
    let mut cases: Vec<PathBuf> = std::fs::read_dir(corpus())
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join("case.json").exists())
        .collect();
    cases.sort();
    assert!(cases.len() >= 40, "{} cases", cases.len());
    let mut differing = BTreeMap::new();
    for dir in &cases {
        let diffs = run_case(&d, dir);
        if !diffs.is_empty() {
            let name = dir.file_name().unwrap().to_string_lossy().into_owned();
            differing.insert(name, diffs);
        }
    }
    let known: BTreeMap<&str, &str> = KNOWN.iter().copied().collect();
    let mut report = String::new();
    for (name, diffs) in &differing {
        if !known.contains_key(name.as_str()) {
            report.push_str(&format!("{name}:\n"));
            for line in diffs.iter().take(8) {
                report.push_str(&format!("    {line}\n"));
            }
        }
    }
    for name in known.keys() {
        if !differing.contains_key(*name) {
            report.push_str(&format!("{name}: matches now; take it off KNOWN\n"));
        }
    }
    assert!(
        report.is_empty(),
        "{} cases differ:\n{report}",
        differing.len()
    );
}
