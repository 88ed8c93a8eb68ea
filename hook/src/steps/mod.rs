//! Every effect netrt has on a container's network is one step behind the
//! [`Step`] trait (in [`step`]); [`STEPS`] lists them in the order they
//! apply, and [`for_plan`] picks those a plan asks for.
//!
//! A step `check`s the plan against the host as read, before any change,
//! and leaves what it found for the steps after it; it says what it will
//! make (`planned`), which the journal writes ahead; `apply` makes it and
//! tells the journal each object. Undoing is the journal's: each kind of
//! entry has its undo (the kernel objects in `runner::undo`, the claims,
//! the lease and the share in their step's file), so that teardown and gc
//! need nothing but the record. The runner owns the order, the host lock,
//! the journal and rollback; a step never takes or drops the lock.

pub mod addresses;
pub mod announce;
pub mod bridge;
pub mod claims;
mod interface;
pub mod lease;
pub mod macvlan;
pub mod pin;
pub mod probe;
pub mod shaping;
pub mod step;
pub mod uplink;

pub use step::{Asked, Found, Placement, Setup, Stage, Step, WayOut, Who};

/// A step's `wanted`: the step, if the plan asks for it.
pub type Wanted = fn(&Asked) -> Option<Box<dyn Step>>;

/// The steps, in the order they apply; each says whether a plan asks for it.
const STEPS: [Wanted; 10] = [
    claims::wanted,
    pin::wanted,
    bridge::wanted,
    macvlan::wanted,
    probe::wanted,
    lease::wanted,
    addresses::wanted,
    announce::wanted,
    shaping::wanted,
    uplink::wanted,
];

/// The steps a plan needs, in the order they apply.
pub fn for_plan(asked: &Asked) -> Vec<Box<dyn Step>> {
    STEPS.iter().filter_map(|wanted| wanted(asked)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::pools::Pools;
    use crate::request::settings::from_words;

    fn names(words: &[&str]) -> Vec<&'static str> {
        let words: Vec<String> = words.iter().map(|w| w.to_string()).collect();
        let plan = crate::request::plan::build(&from_words(&words).unwrap()).unwrap();
        let who = Who { id: "c1".into(), hostname: None };
        for_plan(&Asked { plan: &plan, pools: &Pools::default(), who: &who }).iter().map(|s| s.name()).collect()
    }

    #[test]
    fn a_plan_gets_the_steps_it_asks_for_in_order() {
        assert_eq!(names(&["net.egress=1mbit"]), ["shaping"]);
        assert_eq!(
            names(&["net.bridge=br0", "net.ip=198.51.100.5/24"]),
            ["bridge attachment", "addresses and routes", "announcement"]
        );
        assert_eq!(names(&["net.bridge=br0"]), ["bridge attachment", "addresses and routes"], "no address to announce");
        assert_eq!(
            names(&["net.bridge=br0", "net.ip=dhcp", "net.ingress=5mbit"]),
            ["namespace pin", "bridge attachment", "DHCP lease", "addresses and routes", "shaping"]
        );
        assert_eq!(
            names(&["net.parent=eth1", "net.vlan=7", "net.ip=198.51.100.5/24", "net.egress.min=10mbit"]),
            ["namespace pin", "macvlan attachment", "addresses and routes", "announcement", "uplink guarantee"]
        );
    }
}
