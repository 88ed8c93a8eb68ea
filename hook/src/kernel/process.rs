//! A process as the kernel tells it apart from a later one with the same
//! pid: its start time.

/// The start time of process `pid` in clock ticks after boot (field 22 of
/// `/proc/PID/stat`); None if there is no such process.
pub fn start_time(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold anything.
    let after_name = &stat[stat.rfind(')')? + 1..];
    after_name.split_whitespace().nth(19)?.parse().ok()
}

#[cfg(test)]
mod tests {
    #[test]
    fn this_process_has_a_start_time_and_a_gone_one_none() {
        let own = super::start_time(std::process::id() as i32).expect("this process");
        assert_eq!(super::start_time(std::process::id() as i32), Some(own), "stable");
        assert!(own > 0);
        assert_eq!(super::start_time(i32::MAX), None);
    }
}
