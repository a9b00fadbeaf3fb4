//! Links `berthd` as a position-dependent executable: its read-only data then needs no
//! relocation at load time, so it stays clean file pages that are faulted in only when used
//! (and dropped when idle, see `berth_memtrim`), instead of a megabyte of dirty memory.

fn main() {
    println!("cargo:rustc-link-arg-bin=berthd=-no-pie");
}
