//! `berth-runtime`: the runc-compatible command line over the `berth_runtime` library.

mod cli;

fn main() {
    std::process::exit(cli::main());
}
