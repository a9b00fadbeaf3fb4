//! Fuzzes the Dockerfile parser, expansion and planning (`berth-build`).

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| berth_fuzzing::dockerfile(data));
