//! Test-only fault switch: with the `fault-injection` feature, setup fails
//! after step `NETRT_FAULT_AFTER_STEP`, so tests can prove the rollback.
//! Release builds compile this to nothing.

#[cfg(feature = "fault-injection")]
pub fn after_step(step: u32) -> Result<(), String> {
    match std::env::var("NETRT_FAULT_AFTER_STEP").ok().and_then(|v| v.parse::<u32>().ok()) {
        Some(n) if n == step => Err(format!("injected fault after step {step}")),
        _ => Ok(()),
    }
}

#[cfg(not(feature = "fault-injection"))]
#[inline(always)]
pub fn after_step(_step: u32) -> Result<(), String> {
    Ok(())
}
