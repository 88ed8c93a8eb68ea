#![no_main]
//! See netrt::fuzzing::state.
libfuzzer_sys::fuzz_target!(|data: &[u8]| netrt::fuzzing::state(data));
