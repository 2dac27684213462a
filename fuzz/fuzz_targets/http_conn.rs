#![no_main]
//! See `fazt::fuzzing::http_conn` for the invariants checked.

libfuzzer_sys::fuzz_target!(|data: &[u8]| fazt::fuzzing::http_conn(data));
