//! The write-ahead journal of one setup: the container's record on disk
//! lists every object before the step that makes it runs, so a run killed
//! anywhere leaves a record that teardown or gc replays in reverse.
//!
//! In memory the journal holds what the steps made; on disk, that and what
//! they announced they will make. A step that makes an object tells the
//! journal (`made`), also when the kernel may have made it on a request
//! that failed. `commit` writes what was made and marks the record done.

use super::record::{Created, Record, Store};
use crate::error::Result;

pub struct Journal<'a> {
    store: &'a Store,
    /// What was made so far, with the lease, the share and the claims flag.
    pub record: Record,
    /// Objects the steps said they will make, written ahead.
    announced: Vec<Created>,
    /// What the record file holds now; None before `begin`.
    written: Option<Record>,
}

impl<'a> Journal<'a> {
    pub fn new(store: &'a Store, record: Record) -> Journal<'a> {
        Journal { store, record, announced: vec![], written: None }
    }

    pub fn store(&self) -> &'a Store {
        self.store
    }

    /// Writes the record as it stands, with what was announced and not made
    /// yet: ahead of a stage's first change one plain write (should the
    /// hook die in it, nothing has changed yet), an atomic rewrite after;
    /// nothing when the file holds it already.
    pub fn write_ahead(&mut self) -> Result<()> {
        let ahead = self.ahead();
        if self.written.is_none() {
            self.store.begin(&ahead)?;
        } else if self.written.as_ref() != Some(&ahead) {
            self.store.update_partial(&ahead)?;
        }
        self.written = Some(ahead);
        Ok(())
    }

    /// Claims the record's static addresses on this host (see
    /// `Store::claim`), once every step has checked them.
    pub fn claim_addresses(&self) -> Result<()> {
        self.store.claim(&self.record)
    }

    /// Adds what a step will make to the record on disk, before it makes
    /// it; nothing is written when the record lists it already.
    pub fn announce(&mut self, objects: Vec<Created>) -> Result<()> {
        let new: Vec<Created> = objects.into_iter().filter(|o| !self.announced.contains(o)).collect();
        if new.is_empty() {
            return Ok(());
        }
        self.announced.extend(new);
        if self.written.is_some() {
            self.write_ahead()?;
        }
        Ok(())
    }

    /// Notes an object a step made (or may have made).
    pub fn made(&mut self, object: Created) {
        self.record.created.push(object);
    }

    /// The object made last, to complete it (its index, once known).
    pub fn last_made(&mut self) -> Option<&mut Created> {
        self.record.created.last_mut()
    }

    /// Setup is done: the record lists exactly what was made, and its name
    /// says it is complete (one rename, atomic).
    pub fn commit(mut self) -> Result<()> {
        self.announced.clear();
        self.write_ahead()?;
        self.store.commit(&self.record.id)
    }

    /// The record as a rollback replays it: only what was made, written
    /// first, so that a replay that fails leaves it for teardown or gc.
    pub fn for_rollback(mut self) -> Result<Option<Record>> {
        if self.written.is_none() {
            return Ok(None);
        }
        self.announced.clear();
        self.write_ahead()?;
        Ok(Some(self.record))
    }

    /// The record with what was announced and not made yet, after what
    /// was made.
    fn ahead(&self) -> Record {
        let mut ahead = self.record.clone();
        let pending: Vec<Created> =
            self.announced.iter().filter(|o| !self.record.created.contains(o)).cloned().collect();
        ahead.created.extend(pending);
        ahead
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::netns::NsId;
    use crate::kernel::sockets::Side;
    use crate::request::plan::Plan;

    fn scratch(name: &str) -> (Store, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!("netrt-journal-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        (Store::new(&dir), dir)
    }

    fn record(id: &str) -> Record {
        Record::new(id, 7, NsId { dev: 4, ino: 40 }, "/proc/7/ns/net".into(), Plan::default())
    }

    fn veth(index: Option<u32>) -> Created {
        Created::HostVeth { name: "nrtv0".into(), index }
    }

    fn ifb() -> Created {
        Created::Ifb { side: Side::Host, name: "nrti0".into() }
    }

    #[test]
    fn what_a_step_plans_is_on_disk_before_it_is_made_and_the_commit_lists_what_was() {
        let (store, dir) = scratch("ahead");
        let mut journal = Journal::new(&store, record("j1"));
        journal.announce(vec![veth(None)]).unwrap();
        assert!(!store.exists("j1"), "nothing is written before the stage writes ahead");
        journal.write_ahead().unwrap();
        assert_eq!(store.load("j1").unwrap().unwrap().created, vec![veth(None)], "written ahead");
        journal.made(veth(Some(9)));
        journal.announce(vec![ifb()]).unwrap();
        let on_disk = store.load("j1").unwrap().unwrap();
        assert_eq!(on_disk.created, vec![veth(Some(9)), veth(None), ifb()], "a later step's plan is added first");
        assert!(!on_disk.complete);
        journal.made(ifb());
        journal.commit().unwrap();
        let committed = store.load("j1").unwrap().unwrap();
        assert!(committed.complete);
        assert_eq!(committed.created, vec![veth(Some(9)), ifb()], "the record lists exactly what was made");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn announcing_what_the_record_lists_writes_nothing() {
        let (store, dir) = scratch("again");
        let mut journal = Journal::new(&store, record("j2"));
        journal.announce(vec![ifb()]).unwrap();
        journal.write_ahead().unwrap();
        let partial = dir.join("containers/j2.partial");
        std::fs::remove_file(&partial).unwrap();
        journal.announce(vec![ifb()]).unwrap();
        assert!(!partial.exists(), "no second write for an object already written ahead");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_rollback_replays_what_was_made_and_nothing_before_the_first_write() {
        let (store, dir) = scratch("rollback");
        let untouched = Journal::new(&store, record("j3"));
        assert_eq!(untouched.for_rollback().unwrap(), None, "refused by a check: nothing to replay");
        let mut journal = Journal::new(&store, record("j4"));
        journal.announce(vec![veth(None), ifb()]).unwrap();
        journal.write_ahead().unwrap();
        journal.made(veth(Some(3)));
        let replayed = journal.for_rollback().unwrap().unwrap();
        assert_eq!(replayed.created, vec![veth(Some(3))]);
        assert_eq!(store.load("j4").unwrap().unwrap().created, vec![veth(Some(3))], "kept on disk for gc");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
