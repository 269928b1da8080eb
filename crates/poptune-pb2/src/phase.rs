//! Where a decision's time goes, with the `profile` feature only (`examples/profile.rs`):
//! [`mark`] charges the time since the previous mark to a phase, [`count`] counts
//! evaluations. Without the feature the
//! marks compile to nothing.

#[cfg(feature = "profile")]
mod imp {
    use std::cell::RefCell;
    use std::time::Instant;

    /// The last mark and the phases' totals.
    type Clock = (Option<Instant>, Vec<(&'static str, f64)>);

    thread_local! {
        static CLOCK: RefCell<Clock> = const { RefCell::new((None, Vec::new())) };
    }

    pub fn start() {
        CLOCK.with(|c| *c.borrow_mut() = (Some(Instant::now()), Vec::new()));
    }

    pub fn mark(phase: &'static str) {
        CLOCK.with(|c| {
            let mut c = c.borrow_mut();
            let now = Instant::now();
            if let Some(then) = c.0 {
                let ms = (now - then).as_secs_f64() * 1e3;
                match c.1.iter_mut().find(|(p, _)| *p == phase) {
                    Some((_, t)) => *t += ms,
                    None => c.1.push((phase, ms)),
                }
            }
            c.0 = Some(now);
        });
    }

    pub fn count(what: &'static str, by: usize) {
        CLOCK.with(|c| {
            let mut c = c.borrow_mut();
            match c.1.iter_mut().find(|(p, _)| *p == what) {
                Some((_, t)) => *t += by as f64,
                None => c.1.push((what, by as f64)),
            }
        });
    }

    pub fn take() -> Vec<(&'static str, f64)> {
        CLOCK.with(|c| std::mem::take(&mut c.borrow_mut().1))
    }
}

#[cfg(feature = "profile")]
pub use imp::{count, mark, start, take};

/// Charges the time since the previous mark to `phase` (nothing without `profile`).
#[cfg(not(feature = "profile"))]
#[inline(always)]
pub fn mark(_phase: &'static str) {}

/// Starts the clock (nothing without `profile`).
#[cfg(not(feature = "profile"))]
#[inline(always)]
pub fn start() {}

/// Adds `by` to the counter `what` (nothing without `profile`).
#[cfg(not(feature = "profile"))]
#[inline(always)]
pub fn count(_what: &'static str, _by: usize) {}
