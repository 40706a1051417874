//! Fuzz target `sync_response`: see [`wxbridge_fuzz::sync_response`] for what it feeds and what it asserts.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| wxbridge_fuzz::sync_response(data));
