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

/// Writes the seeds of `local_log` with the monitor's own encoder (run by hand:
/// `cargo test -p berth-fuzzing -- --ignored write_local_log_seeds`).
#[test]
#[ignore = "writes the seed files"]
fn write_local_log_seeds() {
    use berth_monitor::locallog::{encode, Entry};
    let dir = corpus("local_log");
    std::fs::create_dir_all(&dir).unwrap();
    let mut log = Vec::new();
    for (i, (source, line)) in [("stdout", "one"), ("stderr", "two"), ("stdout", "three")]
        .iter()
        .enumerate()
    {
        let e = Entry {
            source: source.as_bytes(),
            time_nano: 1_700_000_000_000_000_000 + i as i64 * 200_000_000,
            line: line.as_bytes(),
            ..Entry::default()
        };
        encode(&e, &mut log);
    }
    let partial = Entry {
        source: b"stdout",
        time_nano: 1_700_000_000_900_000_000,
        line: b"piece",
        partial: true,
        last: false,
        id: b"p1",
        ordinal: 1,
    };
    encode(&partial, &mut log);
    // The options byte first (see `berth_fuzzing::local_log`).
    for (name, flags, bytes) in [
        ("whole", 0b0000_0011u8, log.clone()),
        ("rotated", 0b0100_0011, log.clone()),
        ("rotated-gz-tail", 0b0111_0011, log.clone()),
        ("since-until-stamps", 0b1000_1111, log.clone()),
        ("torn", 0b0000_0011, log[..log.len() - 3].to_vec()),
    ] {
        let mut seed = vec![flags];
        seed.extend_from_slice(&bytes);
        std::fs::write(dir.join(name), seed).unwrap();
    }
}
