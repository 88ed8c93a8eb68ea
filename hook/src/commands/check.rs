//! `netrt-hook check [--pod NAMESPACE] KEY=VALUE...`: what netrt would do
//! with these settings on this host, for a local container or a pod; changes nothing.

use crate::error::{Error, Result};
use crate::request::origin::Origin;
use crate::request::{plan, settings, units};

/// One line per effect the settings would have, after the trust rule that
/// applies to a container of `origin`.
pub fn check(words: &[String], origin: &Origin) -> Result<Vec<String>> {
    let settings = settings::from_words(words).map_err(Error::Input)?;
    if matches!(origin, Origin::Pod { .. }) && words.iter().any(|w| w.starts_with(settings::ENV_PREFIX)) {
        return Err(Error::Input(
            "a pod's NETRT_* variables never count (setup ignores them: its image and its author set them); \
             give its settings as annotations"
                .into(),
        ));
    }
    let config = crate::config::load()?;
    let mut lines = vec![config.trust.describe(origin)];
    config.trust.check_env(words)?;
    config.trust.check(origin, &settings, &config.pools)?;
    let plan = plan::build_with(&settings, &config.pools)?;
    config.policy.check_with(&plan, &config.pools)?;
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
