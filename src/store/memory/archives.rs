//! Statistics archives in the embedded store, kept across restarts in
//! `<data_dir>/stats.json`, rewritten with every sample.
//!
//! One concern of the backend, split out of its module: it uses the module's types and helpers
//! as its own.

use super::*;

/// Every node's archives: node → row span → slot → record.
pub(super) type ArchiveBook = BTreeMap<String, BTreeMap<u64, BTreeMap<usize, String>>>;

/// The file the archives are kept in.
pub(super) const ARCHIVE_FILE: &str = "stats.json";

#[async_trait]
impl Archives for MemoryStore {
    async fn archive_put(&self, node: &str, slots: &[(u64, usize, String)]) -> StoreResult<()> {
        let mut archives = lock(&self.archives);
        let (book, file) = &mut *archives;
        let mine = book.entry(node.to_owned()).or_default();
        for (span, slot, record) in slots {
            mine.entry(*span).or_default().insert(*slot, record.clone());
        }
        match file {
            Some(file) => files::save(file, book),
            None => Ok(()),
        }
    }

    async fn archive_slots(&self, node: &str, span: u64) -> StoreResult<Vec<(usize, String)>> {
        let archives = lock(&self.archives);
        let slots = (archives.0.get(node))
            .and_then(|spans| spans.get(&span))
            .map(|slots| slots.iter().map(|(i, r)| (*i, r.clone())).collect());
        Ok(slots.unwrap_or_default())
    }

    async fn archive_nodes(&self) -> StoreResult<Vec<String>> {
        Ok(lock(&self.archives).0.keys().cloned().collect())
    }
}
