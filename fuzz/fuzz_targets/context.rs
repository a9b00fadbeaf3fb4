//! Fuzzes the build context reader of `POST /build` (`berth-build`).

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| berth_fuzzing::context(data));
