//! The memory backend: an experiment kept in memory, for library runs that need no directory
//! and for tests of everything above the store.

use std::collections::BTreeMap;

use poptune::Event;

use crate::{
    CheckpointRow, Commit, FaultRow, MemberRow, RunStatus, StepRow, Store, StoreError, Tally,
};

/// An experiment kept in memory; it lives as long as the value.
#[derive(Clone, Debug, Default)]
pub struct MemoryStore {
    definition: Option<(String, String)>,
    members: Vec<MemberRow>,
    /// Steps by (member, epoch, step).
    steps: BTreeMap<(usize, u64, u64), StepRow>,
    events: Vec<Event>,
    checkpoints: BTreeMap<String, CheckpointRow>,
    faults: Vec<FaultRow>,
    status: Option<RunStatus>,
    elapsed: f64,
    tally: Option<Tally>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        MemoryStore::default()
    }
}

impl Store for MemoryStore {
    fn create(
        &mut self,
        name: &str,
        definition: &str,
        members: &[MemberRow],
    ) -> Result<(), StoreError> {
        self.definition = Some((name.to_string(), definition.to_string()));
        self.members = members.to_vec();
        self.status = Some(RunStatus::Running);
        Ok(())
    }

    fn definition(&self) -> Result<Option<(String, String)>, StoreError> {
        Ok(self.definition.clone())
    }

    fn members(&self) -> Result<Vec<MemberRow>, StoreError> {
        Ok(self.members.clone())
    }

    fn commit(&mut self, c: &Commit) -> Result<(), StoreError> {
        // Checked first, so that a bad commit changes nothing (as a rolled-back transaction).
        if let Some(m) = c.members.iter().find(|m| m.id >= self.members.len()) {
            return Err(StoreError::Mismatch(format!(
                "member {} does not exist (the experiment has {})",
                m.id,
                self.members.len()
            )));
        }
        let mut new = std::collections::BTreeSet::new();
        if let Some(s) = c.steps.iter().find(|s| {
            self.steps.contains_key(&(s.member, s.epoch, s.step))
                || !new.insert((s.member, s.epoch, s.step))
        }) {
            return Err(StoreError::Mismatch(format!(
                "step {} of member {} is already recorded",
                s.step, s.member
            )));
        }
        for s in &c.steps {
            self.steps.insert((s.member, s.epoch, s.step), s.clone());
        }
        for k in &c.checkpoints {
            self.checkpoints.insert(k.name.clone(), k.clone());
        }
        for n in &c.forget {
            self.checkpoints.remove(n);
        }
        for m in &c.members {
            self.members[m.id] = m.clone();
        }
        self.events.extend(c.events.iter().cloned());
        self.faults.extend(c.faults.iter().cloned());
        if let Some(s) = &c.status {
            self.status = Some(s.clone());
        }
        if let Some(t) = &c.tally {
            self.tally = Some(t.clone());
        }
        if let (Some(d), Some((_, stored))) = (&c.definition, &mut self.definition) {
            *stored = d.clone();
        }
        if c.elapsed > 0.0 {
            self.elapsed += c.elapsed;
        }
        Ok(())
    }

    fn steps(&self) -> Result<Vec<StepRow>, StoreError> {
        Ok(self.steps.values().cloned().collect())
    }

    fn events(&self) -> Result<Vec<Event>, StoreError> {
        Ok(self.events.clone())
    }

    fn checkpoints(&self) -> Result<Vec<CheckpointRow>, StoreError> {
        Ok(self.checkpoints.values().cloned().collect())
    }

    fn forget_checkpoints(&mut self, names: &[String]) -> Result<(), StoreError> {
        for n in names {
            self.checkpoints.remove(n);
        }
        Ok(())
    }

    fn faults(&self) -> Result<Vec<FaultRow>, StoreError> {
        Ok(self.faults.clone())
    }

    fn status(&self) -> Result<(RunStatus, f64), StoreError> {
        Ok((self.status.clone().unwrap_or(RunStatus::New), self.elapsed))
    }

    fn tally(&self) -> Result<Option<Tally>, StoreError> {
        Ok(self.tally.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_store_contract() {
        // The contract reopens the store between checks: the same memory, shared.
        let shared = std::sync::Arc::new(std::sync::Mutex::new(MemoryStore::new()));
        crate::contract::check("exp", &mut || {
            Box::new(Shared(shared.clone())) as Box<dyn Store>
        });
    }

    /// A handle on one memory store, as a reopened database is a handle on one file.
    struct Shared(std::sync::Arc<std::sync::Mutex<MemoryStore>>);

    impl Shared {
        fn get(&self) -> std::sync::MutexGuard<'_, MemoryStore> {
            self.0.lock().unwrap()
        }
    }

    impl Store for Shared {
        fn create(&mut self, n: &str, d: &str, m: &[MemberRow]) -> Result<(), StoreError> {
            self.get().create(n, d, m)
        }
        fn definition(&self) -> Result<Option<(String, String)>, StoreError> {
            self.get().definition()
        }
        fn members(&self) -> Result<Vec<MemberRow>, StoreError> {
            self.get().members()
        }
        fn commit(&mut self, c: &Commit) -> Result<(), StoreError> {
            self.get().commit(c)
        }
        fn steps(&self) -> Result<Vec<StepRow>, StoreError> {
            self.get().steps()
        }
        fn events(&self) -> Result<Vec<Event>, StoreError> {
            self.get().events()
        }
        fn checkpoints(&self) -> Result<Vec<CheckpointRow>, StoreError> {
            self.get().checkpoints()
        }
        fn forget_checkpoints(&mut self, names: &[String]) -> Result<(), StoreError> {
            self.get().forget_checkpoints(names)
        }
        fn faults(&self) -> Result<Vec<FaultRow>, StoreError> {
            self.get().faults()
        }
        fn status(&self) -> Result<(RunStatus, f64), StoreError> {
            self.get().status()
        }
        fn tally(&self) -> Result<Option<Tally>, StoreError> {
            self.get().tally()
        }
    }
}
