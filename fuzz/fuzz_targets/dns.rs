//! Fuzzes the embedded DNS server's reading of a query and its reply.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| berth_fuzzing::dns(data));
