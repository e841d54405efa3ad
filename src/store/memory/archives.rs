//! Statistics archives in the embedded store, kept across restarts in
//! `<data_dir>/stats.json`, rewritten with every sample.
//!
//! One concern of the backend, split out of its module: it uses the module's types and helpers
//! as its own.

use super::lease::Lease;
use super::*;

/// Every node's archives, when each last sampled, and the alerts on record.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
pub(super) struct ArchiveBook {
    /// Node → row span → slot → record.
    #[serde(default)]
    archives: BTreeMap<String, BTreeMap<u64, BTreeMap<usize, String>>>,
    /// Node → Unix time of its last sample.
    #[serde(default)]
    seen: BTreeMap<String, i64>,
    #[serde(default)]
    alerts: BTreeMap<String, String>,
    #[serde(skip)]
    lease: Lease,
}

impl ArchiveBook {
    fn save(&self, file: &Option<std::path::PathBuf>) -> StoreResult<()> {
        match file {
            Some(file) => files::save(file, self),
            None => Ok(()),
        }
    }
}

/// The file the archives are kept in.
pub(super) const ARCHIVE_FILE: &str = "stats.json";

#[async_trait]
impl Archives for MemoryStore {
    async fn archive_put(
        &self,
        node: &str,
        at: i64,
        slots: &[(u64, usize, String)],
    ) -> StoreResult<()> {
        let mut archives = lock(&self.archives);
        let (book, file) = &mut *archives;
        book.seen.insert(node.to_owned(), at);
        let mine = book.archives.entry(node.to_owned()).or_default();
        for (span, slot, record) in slots {
            mine.entry(*span).or_default().insert(*slot, record.clone());
        }
        book.save(file)
    }

    async fn archive_slots(
        &self,
        node: &str,
        span: u64,
        slots: &[usize],
    ) -> StoreResult<Vec<(usize, String)>> {
        let archives = lock(&self.archives);
        let Some(archive) = (archives.0.archives.get(node)).and_then(|spans| spans.get(&span))
        else {
            return Ok(Vec::new());
        };
        let written = slots
            .iter()
            .filter_map(|i| archive.get(i).map(|r| (*i, r.clone())));
        Ok(written.collect())
    }

    async fn archive_nodes(&self) -> StoreResult<BTreeMap<String, i64>> {
        Ok(lock(&self.archives).0.seen.clone())
    }

    async fn alert_lease(&self, holder: &str, ttl: Duration) -> StoreResult<bool> {
        let mut archives = lock(&self.archives);
        Ok(archives.0.lease.holder(holder, ttl, true).as_deref() == Some(holder))
    }

    async fn alert_book(&self) -> StoreResult<BTreeMap<String, String>> {
        Ok(lock(&self.archives).0.alerts.clone())
    }

    async fn alert_note(&self, key: &str, record: Option<&str>) -> StoreResult<()> {
        let mut archives = lock(&self.archives);
        let (book, file) = &mut *archives;
        match record {
            Some(record) => book.alerts.insert(key.to_owned(), record.to_owned()),
            None => book.alerts.remove(key),
        };
        book.save(file)
    }
}
