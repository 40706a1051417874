//! Fuzz target `login_xml`: see [`wxbridge_fuzz::login_xml`] for what it feeds and what it asserts.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| wxbridge_fuzz::login_xml(data));
