//! Fuzzes the WebSocket frames a client of `GET /containers/{id}/attach/ws` sends (berthd).

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| berth_fuzzing::websocket(data));
