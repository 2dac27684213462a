#![no_main]
//! See `fazt::fuzzing::track_json` for the invariants checked.

libfuzzer_sys::fuzz_target!(|data: &[u8]| fazt::fuzzing::track_json(data));
