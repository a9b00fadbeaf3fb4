//! `berth-runtime`: the runc-compatible command line over the `berth_runtime` library.

mod cli;

fn main() {
    // Rust ignores SIGPIPE; a CLI whose reader went away should end quietly, as runc does.
    // SAFETY: SIG_DFL installs no handler, so no code of ours runs in a signal context.
    let _ = unsafe {
        nix::sys::signal::signal(
            nix::sys::signal::Signal::SIGPIPE,
            nix::sys::signal::SigHandler::SigDfl,
        )
    };
    std::process::exit(cli::main());
}
