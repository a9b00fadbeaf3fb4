//! Fuzzes the monitor protocol's messages and line readers (`berth-monitor`).

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| berth_fuzzing::monitor(data));
