//! Fuzz target `js_text`: see [`wxbridge_fuzz::js_text`] for what it feeds and what it asserts.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| wxbridge_fuzz::js_text(data));
