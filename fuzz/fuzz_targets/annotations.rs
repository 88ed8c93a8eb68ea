#![no_main]
//! See netrt::fuzzing::annotations.
libfuzzer_sys::fuzz_target!(|data: &[u8]| netrt::fuzzing::annotations(data));
