//! Fuzzes the json-file log reader of `docker logs` (`berth-engine`).

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| berth_fuzzing::logs(data));
