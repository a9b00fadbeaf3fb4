//! Fuzzes `layer::apply` of a tar, gzip or zstd layer into a temporary directory.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| berth_fuzzing::layer(data));
