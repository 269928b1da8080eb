//! Riding out a database outage: a worker whose connection is gone waits for the database,
//! reconnecting with backoff, up to a limit (`--outage-limit`), then goes on and says in one
//! line how long the database was unreachable.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use poptune_pg::PostgresStore;
use poptune_store::StoreError;

use crate::RunError;

/// The first pause between two reconnection attempts; it doubles up to [`MAX_PAUSE`].
const FIRST_PAUSE: Duration = Duration::from_millis(100);

/// The longest pause between two reconnection attempts.
const MAX_PAUSE: Duration = Duration::from_secs(5);

/// One worker's view of the database's outages, shared by its slots: when the current outage
/// began, and what the outages cost in all.
pub(super) struct Outage {
    worker: String,
    location: String,
    limit: Duration,
    quiet: bool,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// When a slot first found the database unreachable, in the outage under way.
    since: Option<Instant>,
    /// Outages ridden out.
    count: u64,
    /// Their total length, seconds.
    seconds: f64,
}

impl Outage {
    /// The outage policy of worker `worker` on the database at `location`: wait up to `limit`.
    pub(super) fn new(worker: &str, location: &str, limit: Duration, quiet: bool) -> Self {
        Outage {
            worker: worker.to_string(),
            location: location.to_string(),
            limit,
            quiet,
            state: Mutex::new(State::default()),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Outages ridden out so far, and their total length in seconds.
    pub(super) fn totals(&self) -> (u64, f64) {
        let s = self.state();
        (s.count, s.seconds)
    }

    /// Runs `f` on `store`; when it fails because the connection is gone, waits for the
    /// database ([`Outage::wait`]) and runs it again. Only for what may be done twice: a
    /// read, or a write whose second run is harmless if the first landed.
    pub(super) fn retry<T>(
        &self,
        store: &PostgresStore,
        mut f: impl FnMut(&PostgresStore) -> Result<T, StoreError>,
    ) -> Result<T, RunError> {
        loop {
            match f(store) {
                Ok(v) => return Ok(v),
                Err(e) if store.connection_lost() => self.wait(store, e)?,
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Waits until `store` is connected again, after `error` showed its connection gone:
    /// reconnects with backoff; fails once the outage has lasted the limit.
    pub(super) fn wait(&self, store: &PostgresStore, error: StoreError) -> Result<(), RunError> {
        let mut last = error;
        let since = self.begin(&last);
        let mut pause = FIRST_PAUSE;
        loop {
            match store.reconnect() {
                Ok(()) => {
                    self.end(since);
                    return Ok(());
                }
                Err(e) => last = e,
            }
            let waited = since.elapsed();
            if waited >= self.limit {
                return Err(RunError::Fatal(format!(
                    "worker {}: the database at {} has been unreachable for {:.0} s, the \
                     --outage-limit; the last error: {last}; start the worker again once the \
                     database is back (its members are taken over meanwhile)",
                    self.worker,
                    self.location,
                    waited.as_secs_f64()
                )));
            }
            std::thread::sleep(pause.min(self.limit - waited));
            pause = (pause * 2).min(MAX_PAUSE);
        }
    }

    /// Notes that the database is unreachable (the first slot to find it says so); returns
    /// when the outage began.
    fn begin(&self, error: &StoreError) -> Instant {
        let mut s = self.state();
        if let Some(t) = s.since {
            return t;
        }
        let now = Instant::now();
        s.since = Some(now);
        if !self.quiet {
            tracing::warn!(
                "worker {}: {error}; reconnecting for up to {:.0} s (--outage-limit)",
                self.worker,
                self.limit.as_secs_f64()
            );
        }
        now
    }

    /// The database is back for a slot whose wait began at `since`; the first slot back says
    /// what happened.
    fn end(&self, since: Instant) {
        let mut s = self.state();
        if s.since.is_none() {
            return;
        }
        s.since = None;
        let secs = since.elapsed().as_secs_f64();
        s.count += 1;
        s.seconds += secs;
        if !self.quiet {
            tracing::warn!(
                "worker {}: the database at {} was unreachable for {secs:.1} s; reconnected",
                self.worker,
                self.location
            );
        }
    }
}
