//! Replays the fuzz targets' kept corpus and every input that once made a
//! target crash (fuzz/corpus/TARGET, fuzz/regressions/TARGET) through the
//! same functions the fuzzers drive, with stable Rust: quick, and a crash
//! that comes back fails the test suite.

use std::fs;
use std::path::Path;

fn replay(target: &str, run: fn(&[u8])) -> usize {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
    let mut count = 0;
    for folder in ["corpus", "regressions"] {
        let Ok(entries) = fs::read_dir(root.join(folder).join(target)) else { continue };
        for entry in entries.flatten() {
            if entry.file_name().to_string_lossy().starts_with('.') {
                continue;
            }
            let Ok(data) = fs::read(entry.path()) else { continue };
            run(&data);
            count += 1;
        }
    }
    count
}

#[test]
fn the_kept_fuzz_inputs_run_clean() {
    for (target, run) in [
        ("annotations", netrt_hook::fuzzing::annotations as fn(&[u8])),
        ("state", netrt_hook::fuzzing::state),
        ("config", netrt_hook::fuzzing::config),
        ("policy", netrt_hook::fuzzing::policy),
    ] {
        let count = replay(target, run);
        assert!(count > 0, "fuzz/corpus/{target} has inputs to replay");
        println!("{target}: {count} inputs replayed");
    }
}
