//! Shared secrets (the cluster secret, the secure queues' admin credential), compared in
//! constant time so that response timing tells a guesser nothing.
//!
//! Both sides are reduced to SHA-256 digests first: equal lengths, so the comparison's time does
//! not even depend on the length of the guess.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The SHA-256 digest of `text`.
pub fn digest(text: &str) -> [u8; 32] {
    Sha256::digest(text.as_bytes()).into()
}

/// A secret, kept only as its digest.
#[derive(Clone)]
pub struct Secret([u8; 32]);

impl Secret {
    pub fn new(text: &str) -> Self {
        Secret(digest(text))
    }

    /// Whether `given` is the secret.
    pub fn matches(&self, given: &str) -> bool {
        self.matches_digest(&digest(given))
    }

    /// Whether a digest (from [`digest`]) is the secret's.
    pub fn matches_digest(&self, given: &[u8; 32]) -> bool {
        self.0.ct_eq(given).into()
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(…)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_secret_matches() {
        let secret = Secret::new("0123456789abcdef");
        assert!(secret.matches("0123456789abcdef"));
        assert!(!secret.matches("0123456789abcdeF"));
        assert!(!secret.matches(""));
        assert_eq!(format!("{secret:?}"), "Secret(…)");
    }
}
