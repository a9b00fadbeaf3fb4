//! Fuzzes image references (`berth-image`'s parser), normalised and read back.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| berth_fuzzing::reference(data));
