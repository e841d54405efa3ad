//! The nouns of the inbox: transaction ids, priorities, delivery states and queue names.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// The metadata of a transaction: every field the producer sent, as strings (PopBox stores them
/// in a Redis hash, so clients read strings back).
pub type Meta = std::collections::BTreeMap<String, String>;

/// Seconds since the Unix epoch, the unit of `expirationDate` and `lastPop`.
pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// The current Unix time in milliseconds.
pub fn unix_now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A transaction id: a lowercase UUID v4 for transactions made here, any string when a client
/// asks about one.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TxId(String);

impl TxId {
    pub fn generate() -> Self {
        TxId(uuid::Uuid::new_v4().to_string())
    }

    /// A new id for which `wanted` holds, if one of the 65,536 tried does. A store may keep a
    /// transaction where its id hashes to: an id chosen so lands it beside its queue. The
    /// tries vary the last random bits of one UUID, so each costs no random number.
    pub fn generate_where(wanted: impl Fn(&str) -> bool) -> Option<Self> {
        let mut bytes = uuid::Uuid::new_v4().into_bytes();
        let start = u16::from_be_bytes([bytes[14], bytes[15]]);
        let mut text = [0u8; uuid::fmt::Hyphenated::LENGTH];
        (0..=u16::MAX).find_map(|n| {
            [bytes[14], bytes[15]] = start.wrapping_add(n).to_be_bytes();
            let id = uuid::Builder::from_random_bytes(bytes).into_uuid();
            let id = id.hyphenated().encode_lower(&mut text);
            wanted(id).then(|| TxId(id.to_owned()))
        })
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<String> for TxId {
    fn from(s: String) -> Self {
        TxId(s)
    }
}

impl From<&str> for TxId {
    fn from(s: &str) -> Self {
        TxId(s.to_owned())
    }
}

impl fmt::Display for TxId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// `H` messages are always delivered before `L` ones; FIFO within each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Priority {
    #[serde(rename = "H")]
    High,
    #[serde(rename = "L")]
    Low,
}

impl Priority {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "H" => Some(Priority::High),
            "L" => Some(Priority::Low),
            _ => None,
        }
    }
}

/// Where one (transaction, queue) pair is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum DeliveryState {
    Pending,
    Blocked,
    Delivered,
}

impl DeliveryState {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "Pending" => Some(DeliveryState::Pending),
            "Blocked" => Some(DeliveryState::Blocked),
            "Delivered" => Some(DeliveryState::Delivered),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Pending => "Pending",
            DeliveryState::Blocked => "Blocked",
            DeliveryState::Delivered => "Delivered",
        }
    }
}

/// The states a client may filter on: `All` or one [`DeliveryState`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StateFilter {
    All,
    Only(DeliveryState),
}

impl StateFilter {
    /// Exact, case-sensitive names, as PopBox accepts them.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "All" => StateFilter::All,
            other => StateFilter::Only(DeliveryState::parse(other)?),
        })
    }

    pub fn admits(self, state: DeliveryState) -> bool {
        match self {
            StateFilter::All => true,
            StateFilter::Only(s) => s == state,
        }
    }
}

/// What taking a message records: delivered outright (`pop`, `subscribe`), or `Blocked` until
/// the consumer acknowledges it (`poprel`, `subscriberel`). An unacknowledged message goes back
/// to the head of its queue as `Pending` once `ack_within` has passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mark {
    Delivered,
    Unacked { ack_within: std::time::Duration },
}

impl Mark {
    /// The state a taken message is left in.
    pub fn state(self) -> DeliveryState {
        match self {
            Mark::Delivered => DeliveryState::Delivered,
            Mark::Unacked { .. } => DeliveryState::Blocked,
        }
    }

    /// When an unacknowledged message taken at `now_ms` (Unix milliseconds) is due back.
    pub fn ack_deadline(self, now_ms: i64) -> Option<i64> {
        match self {
            Mark::Delivered => None,
            Mark::Unacked { ack_within } => {
                Some(now_ms.saturating_add(ack_within.as_millis().min(i64::MAX as u128) as i64))
            }
        }
    }
}

/// Which family of queues a request addresses: an optional tenant (organisation) and whether
/// it came in on the secure listener. `SEC:q1` and `UNSEC:q1` are different queues.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Namespace {
    pub org: Option<String>,
    pub secure: bool,
}

impl Namespace {
    pub fn plain(org: Option<String>) -> Self {
        Namespace { org, secure: false }
    }

    /// The key prefix PopBox uses: `[<org>:]UNSEC:` or `[<org>:]SEC:`, the org spelled as
    /// [`org_in_keys`] does.
    pub fn prefix(&self) -> String {
        let listener = if self.secure { "SEC:" } else { "UNSEC:" };
        match &self.org {
            Some(org) => [&org_in_keys(org), ":", listener].concat(),
            None => listener.to_owned(),
        }
    }

    pub fn queue(&self, id: &str) -> QueueName {
        QueueName::new(&self.prefix(), id)
    }
}

/// Orgs that would read as part of the key layout: as an org, `SEC` or `UNSEC` makes one
/// listener's queues the other's (`SEC:UNSEC:x` is org `SEC`'s plain queue `x` and the secure
/// queue `UNSEC:x`), and `H` or `L` makes a queue's `PB:Q|<org>:…:userInfo` another queue's
/// list `PB:Q|H:…`.
const LAYOUT_WORDS: [&str; 4] = ["SEC", "UNSEC", "H", "L"];

/// An org as queue keys spell it. A key reads `[<org>:]<listener>:<queue id>`: with no `:` or
/// `|` in the org and the org none of the `LAYOUT_WORDS`, a key names one (listener, org,
/// queue) only, whatever the queue id holds, and no key of another kind (lists, `userInfo`,
/// groups, transactions) either. Other orgs are percent-encoded: `:` as `%3A`, `|` as `%7C`,
/// `%` as `%25`, and the first letter of a layout word (`SEC` is `%53EC`). Decoding gives the
/// org back, so distinct orgs stay distinct. Plain orgs, which is every one PopBox's clients
/// are known to use, keep PopBox's layout.
pub fn org_in_keys(org: &str) -> std::borrow::Cow<'_, str> {
    let layout_word = LAYOUT_WORDS.contains(&org);
    if !layout_word && !org.contains([':', '|', '%']) {
        return org.into();
    }
    let mut spelled = String::with_capacity(org.len() + 6);
    for (at, c) in org.char_indices() {
        match c {
            ':' => spelled.push_str("%3A"),
            '|' => spelled.push_str("%7C"),
            '%' => spelled.push_str("%25"),
            // Layout words are ASCII.
            c if layout_word && at == 0 => spelled.push_str(&format!("%{:02X}", c as u32)),
            c => spelled.push(c),
        }
    }
    spelled.into()
}

/// A queue's full name (namespace prefix + the id the client uses). Transaction states are
/// keyed by the bare id, so both halves are kept. Identity is the full name alone, so a map of
/// queues can be searched by the name a notification carries.
#[derive(Debug, Clone)]
pub struct QueueName {
    key: String,
    id_start: usize,
}

impl QueueName {
    pub fn new(prefix: &str, id: &str) -> Self {
        QueueName {
            key: [prefix, id].concat(),
            id_start: prefix.len(),
        }
    }

    /// The name back from its two halves as [`key`](Self::key) and [`id`](Self::id) gave them
    /// (e.g. read from the store); `None` if `id` is not the end of `key`.
    pub fn from_parts(key: &str, id: &str) -> Option<Self> {
        key.ends_with(id).then(|| QueueName {
            key: key.to_owned(),
            id_start: key.len() - id.len(),
        })
    }

    /// The name back from its key alone (`[<org>:]UNSEC:<id>` or `…SEC:<id>`, as an operator
    /// reads it in a list of queues); `None` if it is not one.
    pub fn from_key(key: &str) -> Option<Self> {
        // An org as keys spell it holds no `:`, so the listener is the first or second part.
        fn after(rest: &str) -> Option<&str> {
            (rest.strip_prefix("UNSEC:")).or_else(|| rest.strip_prefix("SEC:"))
        }
        let id = after(key).or_else(|| after(key.split_once(':')?.1))?;
        Self::from_parts(key, id)
    }

    /// The namespaced name, unique across tenants and listeners.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The id as the client spelled it, which is also the field name in transaction states.
    pub fn id(&self) -> &str {
        &self.key[self.id_start..]
    }
}

impl PartialEq for QueueName {
    fn eq(&self, other: &Self) -> bool {
        self.key == other.key
    }
}

impl Eq for QueueName {}

impl std::hash::Hash for QueueName {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.key.hash(state)
    }
}

impl std::borrow::Borrow<str> for QueueName {
    fn borrow(&self) -> &str {
        &self.key
    }
}

impl fmt::Display for QueueName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.key)
    }
}

/// One entry of a queue: a reference to a transaction, and the list it came from (so that it
/// can be put back where it was).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedRef {
    pub tx: TxId,
    pub priority: Priority,
}

/// A message as a consumer sees it: its transaction and its payload, `None` when the
/// transaction expired or was deleted after the reference was queued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub tx: TxId,
    pub payload: Option<String>,
}

impl Message {
    pub fn from_meta(tx: TxId, meta: Option<&Meta>) -> Self {
        let payload = meta.and_then(|m| m.get("payload").cloned());
        Message { tx, payload }
    }
}

/// One entry of a transaction's history: its state in `queue` became `state`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateChange {
    pub queue: String,
    pub state: DeliveryState,
    /// Unix milliseconds.
    pub at: i64,
}

/// A provisioning held back by `delay`: what to push, and where, once it is due.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DelayedPush {
    pub id: TxId,
    pub priority: Priority,
    pub expires_at: i64,
    /// Each queue as its full key and its id (see [`QueueName::from_parts`]).
    pub queues: Vec<(String, String)>,
}

impl DelayedPush {
    pub fn new(id: TxId, priority: Priority, expires_at: i64, queues: &[QueueName]) -> Self {
        let queues = queues
            .iter()
            .map(|q| (q.key().to_owned(), q.id().to_owned()))
            .collect();
        DelayedPush {
            id,
            priority,
            expires_at,
            queues,
        }
    }

    pub fn queue_names(&self) -> Vec<QueueName> {
        self.queues
            .iter()
            .filter_map(|(key, id)| QueueName::from_parts(key, id))
            .collect()
    }
}

/// What `GET /queue/<id>` reports.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueueInfo {
    pub high: Vec<TxId>,
    pub low: Vec<TxId>,
    pub blocked: bool,
    pub last_pop: Option<i64>,
}

/// Ids for waiters, unique within the process.
pub fn next_waiter_id() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// A validated transaction, ready to be stored and pushed into its queues.
#[derive(Debug, Clone)]
pub struct NewTransaction {
    pub id: TxId,
    pub priority: Priority,
    /// Queue ids as the client gave them (without namespace), in order, duplicates kept.
    pub queues: Vec<String>,
    /// Every top-level field except `queue`, stringified; includes `expirationDate`.
    pub meta: Meta,
    pub expires_at: i64,
    /// The request's `Idempotency-Key`, as the store keeps it (the inbox's `once_key`): a
    /// provisioning with the same one while its transaction lives stores nothing new.
    pub once: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_are_uuids_where_wanted() {
        let hash = crate::model::QueueHash::Crc16;
        for shard in 0..8 {
            let id = TxId::generate_where(|id| hash.shard(id, 8) == shard).unwrap();
            let parsed = uuid::Uuid::parse_str(id.as_str()).unwrap();
            assert_eq!(parsed.get_version_num(), 4);
            assert_eq!(
                parsed.hyphenated().to_string(),
                id.as_str(),
                "lowercase, hyphenated"
            );
            assert_eq!(hash.shard(id.as_str(), 8), shard);
        }
        assert_ne!(
            TxId::generate_where(|_| true),
            TxId::generate_where(|_| true),
            "random"
        );
        assert_eq!(TxId::generate_where(|_| false), None);
    }

    #[test]
    fn queue_name_keeps_prefix_and_id_apart() {
        let q = Namespace::plain(Some("acme".into())).queue("q1");
        assert_eq!(q.key(), "acme:UNSEC:q1");
        assert_eq!(q.id(), "q1");
        let s = Namespace {
            org: None,
            secure: true,
        }
        .queue("q1");
        assert_eq!(s.key(), "SEC:q1");
        assert_ne!(s, Namespace::default().queue("q1"));
    }

    #[test]
    fn orgs_keep_popbox_spelling_unless_they_read_as_layout() {
        for plain in ["acme", "tenant-7", "Sec", "HH", "é", ""] {
            assert_eq!(org_in_keys(plain), plain);
        }
        let spelled = [
            ("PB:Q|H", "PB%3AQ%7CH"),
            ("SEC", "%53EC"),
            ("UNSEC", "%55NSEC"),
            ("H", "%48"),
            ("L", "%4C"),
            ("50%", "50%25"),
            ("%53EC", "%2553EC"),
        ];
        for (org, keyed) in spelled {
            assert_eq!(org_in_keys(org), keyed);
            let decoded = percent_encoding::percent_decode_str(keyed)
                .decode_utf8()
                .unwrap();
            assert_eq!(decoded, org, "{keyed} decodes back");
        }
    }

    #[test]
    fn a_queue_name_comes_back_from_its_key() {
        for (ns, id) in [
            (Namespace::plain(None), "q1"),
            (Namespace::plain(Some("acme".into())), "a:b"),
            (
                Namespace {
                    org: Some("SEC".into()),
                    secure: true,
                },
                "SEC:x",
            ),
        ] {
            let name = ns.queue(id);
            let back = QueueName::from_key(name.key()).unwrap();
            assert_eq!((back.key(), back.id()), (name.key(), id));
        }
        assert!(QueueName::from_key("q1").is_none());
        assert!(QueueName::from_key("acme:q1").is_none());
    }
}
