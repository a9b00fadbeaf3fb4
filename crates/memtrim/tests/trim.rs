#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions unwrap too

use std::time::Duration;

use berth_memtrim::Trimmer;

/// This process's resident file-backed and anonymous kilobytes.
fn rss() -> (u64, u64) {
    let rollup = std::fs::read_to_string("/proc/self/smaps_rollup").unwrap();
    let field = |name: &str| -> u64 {
        rollup
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.trim().trim_end_matches("kB").trim().parse().unwrap())
            .unwrap()
    };
    (field("Rss:") - field("Anonymous:"), field("Anonymous:"))
}

#[test]
fn a_trim_gives_code_pages_and_freed_heap_back() {
    // Heap that is freed again, and code pages that the test harness faulted in.
    let blocks: Vec<Vec<u8>> = (0..64).map(|i| vec![i as u8; 64 << 10]).collect();
    drop(blocks);
    let (file_before, _) = rss();
    let mut trimmer = Trimmer::threaded(Duration::ZERO);
    assert!(
        trimmer.due_in().is_none(),
        "nothing to trim before activity"
    );
    trimmer.touch();
    assert_eq!(trimmer.due_in(), Some(Duration::ZERO));
    trimmer.trim_if_idle();
    assert!(trimmer.due_in().is_none(), "a trim clears the activity");
    let (file_after, _) = rss();
    assert!(
        file_after < file_before,
        "file-backed RSS {file_before} kB -> {file_after} kB"
    );
}
