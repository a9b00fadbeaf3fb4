//! The fuzz targets' seed corpora (`fuzz/corpus/<target>/`, with the inputs of past crashes)
//! fed to the same functions the fuzz targets call, on the stable toolchain: a smoke run of
//! every target inside `cargo test`. `.ci/run` then fuzzes each target on nightly.

use std::path::PathBuf;

fn corpus(target: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target)
}

#[test]
fn every_corpus_file_of_every_target_runs() {
    for (name, run) in berth_fuzzing::TARGETS {
        let dir = corpus(name);
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.map(|e| e.path()))
            .collect::<Result<_, _>>()
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        files.sort();
        assert!(!files.is_empty(), "no seed for {name} in {}", dir.display());
        for file in files {
            let data = std::fs::read(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            eprintln!("{name}: {}", file.display());
            run(&data);
        }
    }
}

#[test]
fn every_target_has_a_fuzz_target() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/fuzz_targets");
    for (name, _) in berth_fuzzing::TARGETS {
        let file = dir.join(format!("{name}.rs"));
        let text =
            std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        assert!(
            text.contains(&format!("berth_fuzzing::{name}(")),
            "{} does not call berth_fuzzing::{name}",
            file.display()
        );
    }
}
