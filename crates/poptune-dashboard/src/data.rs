//! What the page is sent: one experiment's data read from its store and kept, so that each
//! update sends only what is new since the client's cursor.
//!
//! The store gives every step at once, ordered by member; the cache appends the rows it had
//! not seen to a log in the order it first saw them, so a client's cursor is one number (its
//! position in the log). The log lives as long as the server: `gen` names it, and a client
//! that comes with another `gen` (the server restarted) is sent everything again.

use std::time::{Duration, Instant};

use poptune::{Event, ExperimentDef, Hyperparams};
use poptune_store::{best_member, FaultRow, MemberRow, RunStatus, Store, Tally};
use serde_json::{json, Value};

use crate::ancestry::ancestry;
use crate::DashboardError;

/// The least time between two reads of the store (clients polling at once share a read).
const REFRESH_EVERY: Duration = Duration::from_millis(250);

/// What a client has already: positions in the server's logs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Cursor {
    /// The log's name the positions refer to (empty: none yet).
    pub gen: String,
    /// Step rows received.
    pub steps: usize,
    /// Events received.
    pub events: usize,
    /// Faults received.
    pub faults: usize,
    /// The member version received.
    pub members: u64,
}

/// Every step row seen, by columns, in the order first seen.
#[derive(Default)]
struct StepLog {
    member: Vec<usize>,
    epoch: Vec<u64>,
    step: Vec<u64>,
    score: Vec<f64>,
}

/// One experiment's data, as last read.
pub(crate) struct Cache {
    id: String,
    gen: String,
    def: ExperimentDef,
    initial: Vec<Hyperparams>,
    log: StepLog,
    /// Each member's last row seen, (epoch, step): a member's rows only come after it.
    seen: Vec<Option<(u64, u64)>>,
    events: Vec<Event>,
    faults: Vec<FaultRow>,
    members: Vec<MemberRow>,
    /// The version at which each member last changed.
    member_version: Vec<u64>,
    version: u64,
    status: RunStatus,
    elapsed: f64,
    tally: Option<Tally>,
    /// What the last full read saw: when it is unchanged, steps, events and faults are too.
    key: Option<(u64, u64, u64, u64)>,
    refreshed: Option<Instant>,
    /// How long the last read of what was new took.
    read_time: Duration,
    /// Who holds each member's lease (distributed runs): `(member, owner)`.
    pub leases: Option<Vec<(usize, String)>>,
}

impl Cache {
    /// An empty cache for experiment `id`, defined by `def`.
    pub fn new(def: ExperimentDef, id: String, gen: String) -> Result<Self, DashboardError> {
        let initial = def
            .experiment()
            .initial_hyperparams()
            .map_err(|e| DashboardError::Data(format!("{}: {e}", def.name)))?;
        Ok(Cache {
            id,
            gen,
            def,
            initial,
            log: StepLog::default(),
            seen: Vec::new(),
            events: Vec::new(),
            faults: Vec::new(),
            members: Vec::new(),
            member_version: Vec::new(),
            version: 0,
            status: RunStatus::New,
            elapsed: 0.0,
            tally: None,
            key: None,
            refreshed: None,
            read_time: Duration::ZERO,
            leases: None,
        })
    }

    /// Whether the last read is older than the refresh interval: 250 ms, or four times the
    /// last read of what was new when that is longer, so that reading a store costs the
    /// server at most a quarter of a core, however many pages poll.
    pub fn stale(&self) -> bool {
        let every = REFRESH_EVERY.max(self.read_time * 4);
        self.refreshed.is_none_or(|t| t.elapsed() >= every)
    }

    /// Reads what changed in `store` (unless it was read a moment ago and `force` is false).
    /// Returns false when the store's steps no longer extend what the log holds (the
    /// experiment was made again): the cache must be replaced.
    pub fn refresh(&mut self, store: &dyn Store, force: bool) -> Result<bool, DashboardError> {
        if !force && !self.stale() {
            return Ok(true);
        }
        let (status, elapsed) = store.status()?;
        let tally = store.tally()?;
        let members = store.members()?;
        let decisions: u64 = members.iter().map(|m| m.decisions).sum();
        let key = tally
            .as_ref()
            .map(|t| (t.compute, t.exploits, t.faults, decisions));
        if key.is_none() || key != self.key || status != self.status {
            // Steps first, then events: an event is never missing for a step read.
            let started = Instant::now();
            // The first read takes everything; later ones only what is new, and their time is
            // what paces the refreshes.
            let first = self.seen.is_empty();
            let steps = store.steps_after(&self.seen)?;
            if !self.append_steps(&steps) {
                return Ok(false);
            }
            self.events = store.events()?;
            self.faults = store.faults()?;
            if !first {
                self.read_time = started.elapsed();
            }
        }
        self.key = key;
        self.set_members(members);
        self.status = status;
        self.elapsed = elapsed;
        self.tally = tally;
        self.refreshed = Some(Instant::now());
        Ok(true)
    }

    /// Appends the rows the store recorded since the last read. False if one of them does not
    /// come after what was seen of its member: the store is not the one logged.
    fn append_steps(&mut self, steps: &[poptune_store::StepRow]) -> bool {
        for row in steps {
            if !poptune_store::is_after(row, &self.seen) {
                return false;
            }
            if self.seen.len() <= row.member {
                self.seen.resize(row.member + 1, None);
            }
            self.seen[row.member] = Some((row.epoch, row.step));
            self.log.member.push(row.member);
            self.log.epoch.push(row.epoch);
            self.log.step.push(row.step);
            self.log.score.push(row.score);
        }
        true
    }

    fn set_members(&mut self, members: Vec<MemberRow>) {
        let changed: Vec<usize> = members
            .iter()
            .enumerate()
            .filter(|(i, m)| self.members.get(*i) != Some(m))
            .map(|(i, _)| i)
            .collect();
        if !changed.is_empty() || members.len() != self.members.len() {
            self.version += 1;
            self.member_version.resize(members.len(), 0);
            for i in changed {
                self.member_version[i] = self.version;
            }
        }
        self.members = members;
    }

    /// The experiment's line in a list of experiments.
    pub fn listing(&self) -> Value {
        let s = self.summary();
        json!({
            "id": self.id, "name": self.def.name, "status": s["status"], "state": s["state"],
            "progress": s["progress"], "best": s["best"], "metric": self.def.metric,
            "population": self.def.population,
        })
    }

    /// Everything after `cursor` (everything, if its `gen` is not this log's).
    pub fn update(&self, cursor: &Cursor, workers: Option<Value>) -> Value {
        let reset = cursor.gen != self.gen;
        let c = if reset {
            Cursor::default()
        } else {
            cursor.clone()
        };
        let from = c.steps.min(self.log.member.len());
        let members: Vec<Value> = self
            .members
            .iter()
            .enumerate()
            .filter(|(i, _)| reset || self.member_version.get(*i).copied().unwrap_or(0) > c.members)
            .map(|(_, m)| self.member_json(m))
            .collect();
        let mut out = json!({
            "gen": self.gen,
            "reset": reset,
            "summary": self.summary(),
            "members_version": self.version,
            "members": members,
            "steps_after": from,
            "steps": {
                "m": &self.log.member[from..], "e": &self.log.epoch[from..],
                "s": &self.log.step[from..], "v": &self.log.score[from..],
            },
            "events_after": c.events.min(self.events.len()),
            "events": self.events.get(c.events..).unwrap_or(&[]),
            "faults_after": c.faults.min(self.faults.len()),
            "faults": self.faults.get(c.faults..).unwrap_or(&[]),
            "best": self.best(),
            "workers": workers,
        });
        if reset {
            out["info"] = self.info();
        }
        out
    }

    fn info(&self) -> Value {
        let d = &self.def;
        json!({
            "id": self.id, "name": d.name, "metric": d.metric,
            "mode": poptune::format::mode(d.mode), "population": d.population,
            "steps": d.stop.steps, "slots": d.slots, "space": d.space,
            "initial": self.initial, "directory": d.directory,
            "stop": d.stop, "distributed": self.leases.is_some(),
        })
    }

    fn member_json(&self, m: &MemberRow) -> Value {
        let worker = self
            .leases
            .as_ref()
            .and_then(|l| l.iter().find(|(id, _)| *id == m.id).map(|(_, o)| o.clone()));
        json!({
            "id": m.id, "step": m.step, "score": m.score, "h": m.h, "done": m.done,
            "failures": m.failures, "decisions": m.decisions, "worker": worker,
        })
    }

    fn summary(&self) -> Value {
        let d = &self.def;
        let target = d.population as u64 * d.stop.steps;
        let trained: u64 = self.members.iter().map(|m| m.step.min(d.stop.steps)).sum();
        let progress = if target == 0 {
            0.0
        } else {
            trained as f64 / target as f64
        };
        let (state, reason) = match &self.status {
            RunStatus::Stopped(why) | RunStatus::Failed(why) => (self.status_word(), why.clone()),
            RunStatus::Interrupted => (self.status_word(), "interrupted".to_string()),
            _ => (self.status_word(), String::new()),
        };
        let best = best_member(d.mode, &self.members).and_then(|b| self.members.get(b));
        json!({
            "status": self.status.to_string(), "state": state, "reason": reason,
            "progress": progress, "trained": trained, "target": target,
            "compute": self.tally.as_ref().map_or(self.log.member.len() as u64, |t| t.compute),
            "exploits": self.tally.as_ref().map_or(0, |t| t.exploits),
            "faults": self.tally.as_ref().map_or(self.faults.len() as u64, |t| t.faults),
            "elapsed": self.elapsed,
            "best": best.map(|m| json!({
                "member": m.id, "score": m.score,
                "text": m.score.map(poptune::format::score),
            })),
        })
    }

    fn status_word(&self) -> &'static str {
        match self.status {
            RunStatus::New => "new",
            RunStatus::Running => "running",
            RunStatus::Finished => "finished",
            RunStatus::Stopped(_) => "stopped",
            RunStatus::Interrupted => "interrupted",
            RunStatus::Failed(_) => "failed",
        }
    }

    fn best(&self) -> Value {
        let Some(b) = best_member(self.def.mode, &self.members) else {
            return Value::Null;
        };
        let Some(m) = self.members.get(b) else {
            return Value::Null;
        };
        let highest = self
            .events
            .iter()
            .flat_map(|e| std::iter::once(e.recipient).chain(e.donor))
            .chain(std::iter::once(b))
            .max()
            .unwrap_or(0);
        if highest >= self.initial.len() {
            // Members the definition does not know: no schedule to follow back.
            return json!({ "member": b });
        }
        let schedule = poptune::lineage::schedule(&self.initial, &self.events, b, m.step);
        json!({
            "member": b,
            "schedule": schedule,
            "ancestry": ancestry(&self.events, b, m.step),
        })
    }
}
