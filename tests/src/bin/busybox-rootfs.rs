//! `busybox-rootfs DIR`: builds the tests' busybox root filesystem (`berth_tests::busybox_rootfs`)
//! in DIR, so that scripts (the build corpus' `make-goldens.sh`) import the very same base image
//! into another engine.

use std::path::Path;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [dir] = args.as_slice() else {
        eprintln!("usage: busybox-rootfs DIR");
        return ExitCode::from(2);
    };
    match berth_tests::busybox_rootfs(Path::new(dir)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("busybox-rootfs: {dir}: {e}");
            ExitCode::FAILURE
        }
    }
}
