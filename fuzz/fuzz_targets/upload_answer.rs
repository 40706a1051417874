//! Fuzz target `upload_answer`: see [`wxbridge_fuzz::upload_answer`] for what it feeds and what it asserts.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| wxbridge_fuzz::upload_answer(data));
