#![no_main]
//! See netrt_hook::fuzzing::config.
libfuzzer_sys::fuzz_target!(|data: &[u8]| netrt_hook::fuzzing::config(data));
