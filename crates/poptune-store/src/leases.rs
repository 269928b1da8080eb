//! Leases: how workers on many machines share one experiment's members.

use std::time::Duration;

use crate::{MemberRow, StoreError};

/// Claims on members for workers that may die at any moment. A claim holds a member for
/// `lease`; a heartbeat extends it; a worker that stops renewing loses the member to the
/// others once the lease runs out, and whatever it was doing is never recorded.
pub trait Leases {
    /// Claims a member for `owner`: one that is not finished, not leased (or whose lease ran
    /// out), and whose step is below `below` (synchronous rounds). Fewest steps first.
    fn claim(
        &self,
        owner: &str,
        lease: Duration,
        below: Option<u64>,
    ) -> Result<Option<MemberRow>, StoreError>;

    /// Extends `owner`'s lease on `member`; `false` if the lease is no longer `owner`'s or has
    /// run out (an expired lease is never revived: another worker may be training the member).
    fn heartbeat(&self, owner: &str, member: usize, lease: Duration) -> Result<bool, StoreError>;

    /// Gives up `owner`'s lease on `member` without recording anything.
    fn release(&self, owner: &str, member: usize) -> Result<(), StoreError>;
}
