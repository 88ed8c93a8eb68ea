#![no_main]
//! See netrt::fuzzing::config.
libfuzzer_sys::fuzz_target!(|data: &[u8]| netrt::fuzzing::config(data));
