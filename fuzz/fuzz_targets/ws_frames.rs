#![no_main]
//! See `fazt::fuzzing::ws_frames` for the invariants checked.

libfuzzer_sys::fuzz_target!(|data: &[u8]| fazt::fuzzing::ws_frames(data));
