//! Fuzzes the JSON request bodies berthd decodes (the first byte picks the type), and the OCI config a create body leads to.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| berth_fuzzing::body(data));
