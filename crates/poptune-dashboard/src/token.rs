//! The access token: when one is required, how it is made and how it is compared.

use rand::Rng;

/// Whether requests must carry an access token.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum TokenPolicy {
    /// A random token when the server binds an address that is not a loopback one; none on
    /// 127.0.0.1 or ::1.
    #[default]
    Auto,
    /// Always a random token, on any address.
    Always,
    /// This token (at least 16 characters), on any address.
    Given(String),
}

/// The shortest token accepted from a caller.
pub(crate) const MIN_LEN: usize = 16;

/// A new random token: 128 bits from the thread's CSPRNG (seeded by the OS), as hex.
pub(crate) fn random() -> String {
    let bytes: [u8; 16] = rand::rng().random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether `given` is `expected`, in time that does not depend on where they differ.
pub(crate) fn matches(expected: &str, given: &str) -> bool {
    let (a, b) = (expected.as_bytes(), given.as_bytes());
    let mut diff = (a.len() ^ b.len()) as u64;
    for (i, x) in a.iter().enumerate() {
        let y = b.get(i).copied().unwrap_or(0);
        diff |= u64::from(x ^ y);
    }
    diff == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_hex_and_compare_exactly() {
        let a = random();
        let b = random();
        assert_eq!(a.len(), 32);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
        assert!(matches(&a, &a.clone()));
        assert!(!matches(&a, &b));
        assert!(!matches(&a, &a[..31]));
        assert!(!matches(&a, &format!("{a}0")));
        assert!(!matches(&a, ""));
    }
}
