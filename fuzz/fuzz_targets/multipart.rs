#![no_main]
//! See `fazt::fuzzing::multipart` for the invariants checked.

libfuzzer_sys::fuzz_target!(|data: &[u8]| fazt::fuzzing::multipart(data));
