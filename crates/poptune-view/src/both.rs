//! Two observers as one.

use poptune_run::{Observer, RunEvent};

/// Two observers as one: each event goes to the first, then to the second; `top` is the
/// larger of theirs.
pub struct Both<'a>(pub &'a dyn Observer, pub &'a dyn Observer);

impl Observer for Both<'_> {
    fn event(&self, event: &RunEvent) {
        self.0.event(event);
        self.1.event(event);
    }

    fn top(&self) -> usize {
        self.0.top().max(self.1.top())
    }
}
