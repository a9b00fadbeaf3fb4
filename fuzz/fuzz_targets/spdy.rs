//! Fuzzes the SPDY/3.1 frames a client of the CRI streaming server sends (exec, attach and
//! port-forward URLs).

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| berth_fuzzing::spdy(data));
