//! Fuzzes the request line: method, path and query, as berthd routes and decodes it.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| berth_fuzzing::route(data));
