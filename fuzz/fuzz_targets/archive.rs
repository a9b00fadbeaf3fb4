//! Fuzzes the `docker load` archive reader, into a temporary image store.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| berth_fuzzing::archive(data));
