#![no_main]
//! See netrt::fuzzing::policy.
libfuzzer_sys::fuzz_target!(|data: &[u8]| netrt::fuzzing::policy(data));
