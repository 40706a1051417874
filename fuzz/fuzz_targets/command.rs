//! Fuzz target `command`: see [`wxbridge_fuzz::command`] for what it feeds and what it asserts.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| wxbridge_fuzz::command(data));
