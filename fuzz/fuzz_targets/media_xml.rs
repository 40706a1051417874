//! Fuzz target `media_xml`: see [`wxbridge_fuzz::media_xml`] for what it feeds and what it asserts.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| wxbridge_fuzz::media_xml(data));
