//! Stopping a run from outside: Ctrl-C, SIGTERM, a library caller.

/// A stop asked for from outside (Ctrl-C, SIGTERM, a library caller): no new segment starts,
/// and the run ends as interrupted once the segments under way are recorded.
pub trait Cancel: Sync {
    /// Whether the run should stop.
    fn cancelled(&self) -> bool;
}

impl Cancel for std::sync::atomic::AtomicBool {
    fn cancelled(&self) -> bool {
        self.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// Never cancelled.
pub struct NoCancel;

impl Cancel for NoCancel {
    fn cancelled(&self) -> bool {
        false
    }
}
