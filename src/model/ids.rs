//! Blocks of customer IDs, as the range master cuts them and nodes hold them.

use serde::{Deserialize, Serialize};

/// Consecutive customer IDs, `from..=to`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdRange {
    pub from: u64,
    pub to: u64,
}

impl IdRange {
    pub fn len(&self) -> u64 {
        (self.to + 1).saturating_sub(self.from)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Splits off the first `n` IDs (at most all of them): `(taken, rest)`.
    pub fn split(&self, n: u64) -> (IdRange, IdRange) {
        let n = n.min(self.len());
        let taken = IdRange {
            from: self.from,
            to: self.from + n - 1,
        };
        let rest = IdRange {
            from: self.from + n,
            to: self.to,
        };
        (taken, rest)
    }
}

impl std::fmt::Display for IdRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.from, self.to)
    }
}

/// What cutting a block off the pool did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoolCut {
    Block(IdRange),
    /// Nothing left to cut.
    Exhausted,
    /// The caller does not hold the range master's lease.
    NotHolder,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_split_at_most_whole() {
        let r = IdRange { from: 10, to: 14 };
        assert_eq!(r.len(), 5);
        assert_eq!(
            r.split(2),
            (IdRange { from: 10, to: 11 }, IdRange { from: 12, to: 14 })
        );
        let (all, rest) = r.split(99);
        assert_eq!(all, r);
        assert!(rest.is_empty());
        assert_eq!(r.to_string(), "10-14");
    }
}
