//! The namespace pin: a bind mount of the container's network namespace
//! under `/run/netrt/netns`, so that teardown can still reach what netrt
//! put inside (a macvlan, a leased address) after the container is gone.

use async_trait::async_trait;

use super::step::{Asked, Setup, Step};
use crate::error::Result;
use crate::state::record::Created;

#[derive(Default)]
pub struct Pin {
    path: String,
}

/// A pin for a macvlan, and for a lease (released from inside at teardown).
pub fn wanted(asked: &Asked) -> Option<Box<dyn Step>> {
    let attachment = asked.plan.attachment.as_ref()?;
    let macvlan = matches!(attachment.medium, crate::request::attachment::Medium::Macvlan { .. });
    (macvlan || attachment.dhcp.is_some()).then(|| Box::new(Pin::default()) as Box<dyn Step>)
}

#[async_trait(?Send)]
impl Step for Pin {
    fn name(&self) -> &'static str {
        "namespace pin"
    }

    async fn check(&mut self, setup: &mut Setup<'_>) -> Result<()> {
        self.path = setup.journal.store().pin_path(&setup.id).display().to_string();
        Ok(())
    }

    fn planned(&self, _setup: &Setup<'_>) -> Vec<Created> {
        vec![Created::NetnsPin { path: self.path.clone() }]
    }

    async fn apply(&mut self, setup: &mut Setup<'_>) -> Result<()> {
        let lead = setup.attachment().lead_key();
        crate::kernel::netns::pin(setup.namespace, std::path::Path::new(&self.path))
            .map_err(|e| setup.refuse_attachment(lead, e))?;
        setup.journal.made(Created::NetnsPin { path: self.path.clone() });
        setup.lead_step_done()
    }
}
