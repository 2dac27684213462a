#![no_main]
//! See `fazt::fuzzing::path` for the invariants checked.

libfuzzer_sys::fuzz_target!(|data: &[u8]| fazt::fuzzing::path(data));
