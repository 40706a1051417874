//! Fuzz target `message_content`: see [`wxbridge_fuzz::message_content`] for what it feeds and what it asserts.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| wxbridge_fuzz::message_content(data));
