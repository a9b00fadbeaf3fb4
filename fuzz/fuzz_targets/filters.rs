//! Fuzzes a `filters` query parameter and `reference` globs.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| berth_fuzzing::filters(data));
