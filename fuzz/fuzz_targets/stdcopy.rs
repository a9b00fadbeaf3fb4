//! Fuzzes Docker's stdcopy framing (`berth-api`).

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| berth_fuzzing::stdcopy(data));
