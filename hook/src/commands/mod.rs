//! The admin's commands besides the hook itself: `status` ([`status`],
//! with `--uplinks` in [`uplinks`]), `pool` ([`pool`]), `renew`
//! ([`renew`]) and `check` ([`check`]). `gc` and `apply-deferred` are the runner's.

pub mod check;
pub mod pool;
pub mod renew;
pub mod status;
pub mod uplinks;
