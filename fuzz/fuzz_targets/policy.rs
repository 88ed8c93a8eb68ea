#![no_main]
//! See netrt_hook::fuzzing::policy.
libfuzzer_sys::fuzz_target!(|data: &[u8]| netrt_hook::fuzzing::policy(data));
