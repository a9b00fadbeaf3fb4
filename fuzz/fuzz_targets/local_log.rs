//! Fuzzes the reader of `local` logs (berth-engine), on files as torn as a killed writer
//! leaves them.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| berth_fuzzing::local_log(data));
