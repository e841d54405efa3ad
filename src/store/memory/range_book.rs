//! The embedded store's customer-ID book: the pool, every node's blocks and the range master's
//! lease. The pool and the blocks are written to `<data_dir>/ranges.json` (a new file renamed
//! over the old, after fsync) before any change is answered, so they survive a restart; the
//! lease is not (a restarted node takes it anew).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::files;
use super::lease::Lease;
use crate::model::{IdRange, PoolCut};
use crate::store::StoreResult;

const FILE: &str = "ranges.json";

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Book {
    pool: Option<IdRange>,
    blocks: BTreeMap<String, Vec<IdRange>>,
}

#[derive(Debug, Default)]
pub struct RangeBook {
    book: Book,
    /// Where the book is kept; none: in memory only (unit tests).
    file: Option<PathBuf>,
    lease: Lease,
}

impl RangeBook {
    /// The book kept in `dir` (created when missing), as it was left.
    pub fn open(dir: &Path) -> StoreResult<Self> {
        let (book, file) = files::load(dir, FILE)?;
        Ok(RangeBook {
            book,
            file: Some(file),
            lease: Lease::default(),
        })
    }

    /// Writes the book out; the change it holds is not answered before this succeeds.
    fn save(&self) -> StoreResult<()> {
        match &self.file {
            Some(file) => files::save(file, &self.book),
            None => Ok(()),
        }
    }

    /// Applies `change`, then saves; on a failed save the change is undone.
    fn change<R>(&mut self, change: impl FnOnce(&mut Book) -> R) -> StoreResult<R> {
        let before = self.book.clone();
        let result = change(&mut self.book);
        if let Err(e) = self.save() {
            self.book = before;
            return Err(e);
        }
        Ok(result)
    }

    pub fn pool(&self) -> Option<IdRange> {
        self.book.pool
    }

    pub fn seed(&mut self, pool: IdRange, replace: bool) -> StoreResult<bool> {
        if self.book.pool.is_some() && !replace {
            return Ok(false);
        }
        self.change(|book| book.pool = Some(pool))?;
        Ok(true)
    }

    pub fn lease(&mut self, holder: &str, ttl: Duration, take: bool) -> Option<String> {
        self.lease.holder(holder, ttl, take)
    }

    pub fn cut(&mut self, holder: &str, size: u64) -> StoreResult<PoolCut> {
        if !self.lease.held_by(holder) {
            return Ok(PoolCut::NotHolder);
        }
        let Some(pool) = self.book.pool.filter(|p| !p.is_empty()) else {
            return Ok(PoolCut::Exhausted);
        };
        let (block, rest) = pool.split(size);
        self.change(|book| book.pool = Some(rest))?;
        Ok(PoolCut::Block(block))
    }

    pub fn blocks(&self) -> BTreeMap<String, Vec<IdRange>> {
        self.book.blocks.clone()
    }

    pub fn add(&mut self, node: &str, block: IdRange) -> StoreResult<()> {
        self.change(|book| book.blocks.entry(node.to_owned()).or_default().push(block))
    }

    pub fn take(&mut self, node: &str, max: u64) -> StoreResult<Option<(IdRange, u64)>> {
        let Some(blocks) = self.book.blocks.get(node) else {
            return Ok(None);
        };
        let Some(first) = blocks.iter().position(|b| !b.is_empty()) else {
            return Ok(None);
        };
        let (taken, rest) = blocks[first].split(max);
        self.change(|book| {
            let blocks = book.blocks.get_mut(node).expect("found above");
            blocks.drain(..first);
            if rest.is_empty() {
                blocks.remove(0);
            } else {
                blocks[0] = rest;
            }
            let left = blocks.iter().map(IdRange::len).sum();
            (taken, left)
        })
        .map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(from: u64, to: u64) -> IdRange {
        IdRange { from, to }
    }

    #[test]
    fn the_lease_has_one_holder_until_it_runs_out() {
        let mut book = RangeBook::default();
        let ttl = Duration::from_millis(50);
        assert_eq!(book.lease("a", ttl, false), None);
        assert_eq!(book.lease("a", ttl, true).as_deref(), Some("a"));
        assert_eq!(book.lease("b", ttl, true).as_deref(), Some("a"));
        assert_eq!(book.cut("b", 10).unwrap(), PoolCut::NotHolder);
        std::thread::sleep(ttl * 2);
        assert_eq!(book.lease("b", ttl, true).as_deref(), Some("b"));
        assert_eq!(
            book.cut("b", 10).unwrap(),
            PoolCut::Exhausted,
            "no pool yet"
        );
    }

    #[test]
    fn cuts_and_takes_never_overlap_and_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let mut book = RangeBook::open(dir.path()).unwrap();
        assert!(book.seed(range(1, 25), false).unwrap());
        assert!(!book.seed(range(100, 200), false).unwrap(), "seeded once");
        book.lease("a", Duration::from_secs(60), true);
        let PoolCut::Block(first) = book.cut("a", 10).unwrap() else {
            panic!("a block")
        };
        assert_eq!(first, range(1, 10));
        let PoolCut::Block(second) = book.cut("a", 2).unwrap() else {
            panic!("a block")
        };
        book.add("a", first).unwrap();
        book.add("a", second).unwrap();
        assert_eq!(book.take("a", 8).unwrap(), Some((range(1, 8), 4)));
        assert_eq!(book.take("a", 8).unwrap(), Some((range(9, 10), 2)));

        let mut reopened = RangeBook::open(dir.path()).unwrap();
        assert_eq!(reopened.pool(), Some(range(13, 25)));
        assert_eq!(reopened.take("a", 8).unwrap(), Some((range(11, 12), 0)));
        assert_eq!(reopened.take("a", 8).unwrap(), None);
        reopened.lease("a", Duration::from_secs(60), true);
        assert_eq!(
            reopened.cut("a", 99).unwrap(),
            PoolCut::Block(range(13, 25))
        );
        assert_eq!(reopened.cut("a", 1).unwrap(), PoolCut::Exhausted);
    }
}
