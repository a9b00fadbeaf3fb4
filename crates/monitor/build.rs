//! Links `berth-monitor` as a position-dependent executable (see `memory.rs`).

fn main() {
    println!("cargo:rustc-link-arg-bin=berth-monitor=-no-pie");
}
