//! Times building the filter of a `linux.seccomp` JSON file: compiled with libseccomp (cold),
//! and read back from a [`berth_seccomp::Cache`] (hit).
//!
//! `cargo run --release -p berth-seccomp --example compile_time -- FILE [ROUNDS]`
//! (e.g. crates/seccomp/tests/fixtures/docker-default-x86_64.json).
use std::time::{Duration, Instant};

use berth_seccomp::cache::Outcome;

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let path = args.next().ok_or("usage: compile_time FILE [ROUNDS]")?;
    let rounds: usize = args.next().map(|r| r.parse()).transpose()?.unwrap_or(20);
    let seccomp: oci_spec::runtime::LinuxSeccomp =
        serde_json::from_str(&std::fs::read_to_string(path)?)?;

    let mut cold = Vec::new();
    let mut len = 0;
    for _ in 0..rounds.max(1) {
        let t = Instant::now();
        len = berth_seccomp::compile(&seccomp)?.len();
        cold.push(t.elapsed());
    }

    let dir = std::env::temp_dir().join(format!("berth-seccomp-bench-{}", std::process::id()));
    let cache = berth_seccomp::Cache::new(&dir);
    let t = Instant::now();
    let (_, first) = cache.compile(&seccomp)?;
    let store = t.elapsed();
    let mut hits = Vec::new();
    for _ in 0..rounds.max(1) {
        let t = Instant::now();
        let (_, outcome) = cache.compile(&seccomp)?;
        hits.push(t.elapsed());
        if !matches!(outcome, Outcome::Hit) {
            return Err(format!("expected a hit, got {outcome:?}").into());
        }
    }
    std::fs::remove_dir_all(&dir)?;
    println!(
        "{len} instructions: compile median {:?}; cache: first {:?} ({first:?}), hit median {:?}",
        median(cold),
        store,
        median(hits)
    );
    Ok(())
}
