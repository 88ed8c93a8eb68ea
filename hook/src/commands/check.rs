//! `netrt-hook check KEY=VALUE...`: what netrt would do with these
//! settings on this host, checked against its configuration; changes nothing.

use crate::error::{Error, Result};
use crate::request::{plan, settings, units};

/// One line per effect the settings would have.
pub fn check(words: &[String]) -> Result<Vec<String>> {
    let settings = settings::from_words(words).map_err(Error::Input)?;
    let config = crate::config::load()?;
    let plan = plan::build_with(&settings, &config.pools)?;
    config.policy.check_with(&plan, &config.pools)?;
    let mut lines = vec![];
    if plan.is_empty() {
        lines.push("no settings: the container would not be touched".to_string());
    }
    lines.extend(plan.attachment.iter().flat_map(|a| a.describe()));
    for floor in plan.guarantees() {
        lines.push(format!(
            "guarantee: {} of at least {} on the attachment's uplink (admitted at setup against its capacity)",
            floor.direction.name(),
            units::format_rate(floor.rate_bps)
        ));
    }
    lines.extend(plan.shapers().map(|shaper| shaper.describe()));
    Ok(lines)
}
