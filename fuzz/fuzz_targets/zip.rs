#![no_main]
//! See `fazt::fuzzing::zip` for the invariants checked.

libfuzzer_sys::fuzz_target!(|data: &[u8]| fazt::fuzzing::zip(data));
