//! How a transaction is kept on its server: its metadata, its state in each queue, and the
//! history of those states. Two layouts:
//!
//! - **split** (PopBox's, where every transaction lives on `store.redis_transactions`, so that
//!   a running PopBox reads the same keys): hashes `PB:T|<id>:meta` (the fields) and
//!   `PB:T|<id>:state` (queue id → state), and list `PB:T|<id>:history` (state changes as JSON);
//! - **dense** (the default, where transactions spread over the set or a cluster): the string
//!   `PB:T|<id>:tx`, the transaction as its push wrote it: its expiry (Unix s), a space, and
//!   JSON `{"m": metadata, "q": [queue ids], "at": Unix ms}`; and the hash `PB:T|<id>:ch` of
//!   what changed since, made by the first change: each queue's state in `s:<queue id>`, the
//!   history as numbered lines `h:<n>`, `h` counting the changes (the latest [`HISTORY_LIMIT`]
//!   lines are kept). The expiry leads so that the first change, which has the record in hand,
//!   gives the hash the same expiry without asking Redis for it.
//!
//! A push writes nothing it could derive: in the dense layout a queue without a state is
//! `Pending`, and the push's own `Pending` lines are made from `q` and `at` when the history is
//! read. So a push is one `SET … EXAT` (a string, where a hash with a 1 KiB field costs Redis a
//! hashtable), a third of the Redis CPU PopBox's layout costs (see `tools/ab` with
//! `AB_FIGURE=redis-cpu`). Scripts name a transaction by its reference after the shard's tag
//! ([`Keys::transaction`]) and reach its keys through the Lua of [`Record::lua`], so that each
//! script is written once for both.

use std::borrow::Cow;

use ::redis::Value;
use serde::{Deserialize, Serialize};

use super::*;

/// The prefix of a queue's state field in a dense record.
const STATE_FIELD: &str = "s:";
/// The prefix of a history line's field in a dense record (`h` alone counts the lines).
const HISTORY_FIELD: &str = "h:";

/// Which layout the transactions of a store are in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Record {
    Split,
    Dense,
}

impl Record {
    /// The layout that goes with where transactions are placed: PopBox's for PopBox's placement.
    pub(super) fn of(placement: &Placement) -> Self {
        match placement {
            Placement::One => Record::Split,
            Placement::Spread(_) => Record::Dense,
        }
    }

    /// The Lua a script that touches transactions starts with (after the shared prelude): each
    /// takes the transaction's name ([`Keys::transaction`]: `rec`) and returns what Redis would.
    ///
    /// - `tx_meta(rec)`: the metadata (false when the transaction is gone), as [`decode_meta`]
    ///   reads it: the hash's field-value list, or the dense record's value (decoded by the
    ///   node, not here: Redis is shared by every node);
    /// - `tx_live(rec)`, `tx_priority(rec)`: whether it exists; its priority (`H`/`L`) or false;
    /// - `tx_state(rec, queue)`: its state in a queue (false: none);
    /// - `tx_mark(rec, queue, state, line, meta)`: sets its state in a queue and, unless `line`
    ///   is false, appends that change to its history, keeping the latest `HISTORY_LIMIT`; only
    ///   ever on a live transaction. The first change gives the dense changes hash the record's
    ///   expiry, read from `meta` (what `tx_meta` gave, if the caller has it) or else asked of
    ///   Redis. The node writes the change's JSON line: building it here would cost Redis,
    ///   which every node shares, more than the change. Dense, it is two calls (count, then state
    ///   and line in one `HSET`): each call from Lua costs Redis about as much as a command;
    /// - `tx_update(rec, at, from)`: merges the field-value pairs of ARGV from index `from` into
    ///   the metadata and, when `at` is not empty, moves the expiry there; 0 when gone, else 1.
    pub(super) fn lua(self) -> &'static str {
        match self {
            Record::Split => SPLIT_LUA,
            Record::Dense => DENSE_LUA,
        }
    }

    /// Adds to `pipe` the commands that store a new transaction: its metadata, each queue's state
    /// `Pending`, and the history of those states (dense, the last two implied by its queues),
    /// all expiring with the transaction. The pipeline is meant to be read as `()`: its replies
    /// are not `ignore`d one by one, which would cost a hash-set insert each for nothing.
    pub(super) fn store(self, pipe: &mut ::redis::Pipeline, keys: &Keys, tx: &NewTransaction) {
        let at = unix_now_ms();
        match self {
            Record::Split => store_split(pipe, keys, tx, at),
            Record::Dense => {
                let record = Dense {
                    m: Cow::Borrowed(&tx.meta),
                    q: Cow::Borrowed(&tx.queues),
                    at,
                };
                let json = serde_json::to_string(&record).expect("records serialise");
                let (key, expires_at) = (keys.record(&tx.id), tx.expires_at.to_string());
                let value = [expires_at.as_str(), " ", &json].concat();
                let args = [
                    key.as_bytes(),
                    value.as_bytes(),
                    b"EXAT",
                    expires_at.as_bytes(),
                ];
                pipe.add_command(command("SET", args));
            }
        }
    }

    /// Adds to `pipe` the command that loads a transaction's metadata, for [`decode_meta`].
    pub(super) fn load_meta(self, pipe: &mut ::redis::Pipeline, keys: &Keys, id: &TxId) {
        match self {
            Record::Split => pipe.hgetall(keys.meta(id)),
            Record::Dense => pipe.get(keys.record(id)),
        };
    }

    /// A transaction's metadata, if it is live.
    pub(super) async fn meta(self, server: &Server, id: &TxId) -> StoreResult<Option<Meta>> {
        let mut pipe = ::redis::pipe();
        self.load_meta(&mut pipe, &server.keys, id);
        let (value,): (Value,) =
            (pipe.query_async(&mut server.conn()).await).map_err(|e| server.error(e))?;
        Ok(decode_meta(server, value))
    }

    /// A transaction's state in each of its queues.
    pub(super) async fn states(
        self,
        server: &Server,
        id: &TxId,
    ) -> StoreResult<Vec<(String, String)>> {
        if self == Record::Split {
            let states = server.conn().hgetall(server.keys.state(id)).await;
            return states.map_err(|e| server.error(e));
        }
        let (record, changes) = dense_parts(server, id).await?;
        let pending = DeliveryState::Pending.as_str();
        let pushed = (record.q.iter()).map(|queue| (queue.clone(), pending.to_owned()));
        let changed = (changes.into_iter())
            .filter_map(|(k, v)| Some((k.strip_prefix(STATE_FIELD)?.to_owned(), v)));
        // The caller keeps the last state given for a queue: the changed one.
        Ok(pushed.chain(changed).collect())
    }

    /// A transaction's history lines, oldest first.
    pub(super) async fn history(self, server: &Server, id: &TxId) -> StoreResult<Vec<String>> {
        if self == Record::Split {
            let lines = server.conn().lrange(server.keys.history(id), 0, -1).await;
            return lines.map_err(|e| server.error(e));
        }
        let (record, changes) = dense_parts(server, id).await?;
        let mut changed: Vec<(u64, String)> = (changes.into_iter())
            .filter_map(|(k, v)| Some((k.strip_prefix(HISTORY_FIELD)?.parse().ok()?, v)))
            .collect();
        changed.sort_unstable_by_key(|(n, _)| *n);
        let pushed = (record.q.iter()).map(|q| history_line(q, DeliveryState::Pending, record.at));
        let lines: Vec<String> = pushed
            .chain(changed.into_iter().map(|(_, line)| line))
            .collect();
        Ok(lines[lines.len().saturating_sub(HISTORY_LIMIT)..].to_vec())
    }

    /// The keys of a transaction (its held push apart).
    pub(super) fn keys(self, keys: &Keys, id: &TxId) -> Vec<String> {
        match self {
            Record::Split => vec![keys.meta(id), keys.state(id), keys.history(id)],
            Record::Dense => vec![keys.record(id), keys.changes(id)],
        }
    }
}

/// A transaction as a push writes it in the dense layout (`PB:T|<id>:tx`).
#[derive(Serialize, Deserialize, Default)]
struct Dense<'a> {
    /// Its metadata.
    m: Cow<'a, Meta>,
    /// The queues it was pushed into, as the client named them (duplicates kept). Left out
    /// when empty: Lua's cjson, which rewrites the record on an update, writes `[]` as `{}`.
    #[serde(default, skip_serializing_if = "<[String]>::is_empty")]
    q: Cow<'a, [String]>,
    /// When it was pushed (Unix ms): when it became `Pending` in each of its queues.
    #[serde(default)]
    at: i64,
}

impl Dense<'static> {
    /// Reads a record's value: its expiry, a space, its JSON.
    fn decode(value: &[u8]) -> Result<Self, String> {
        let space = (value.iter().position(|b| *b == b' ')).ok_or("no expiry before the JSON")?;
        serde_json::from_slice(&value[space + 1..]).map_err(|e| e.to_string())
    }
}

/// A dense transaction's record (empty when gone or unreadable) and its changes' fields.
async fn dense_parts(
    server: &Server,
    id: &TxId,
) -> StoreResult<(Dense<'static>, Vec<(String, String)>)> {
    let keys = &server.keys;
    let (record, changes): (Option<Vec<u8>>, Vec<(String, String)>) = ::redis::pipe()
        .get(keys.record(id))
        .hgetall(keys.changes(id))
        .query_async(&mut server.conn())
        .await
        .map_err(|e| server.error(e))?;
    let record = record.and_then(|json| Dense::decode(&json).ok());
    Ok((record.unwrap_or_default(), changes))
}

/// How many queues' states one command writes at most.
const BATCH: usize = 1000;

/// [`Record::store`] in PopBox's keys, pushed at `at`. Fields and lines are written in batches,
/// so that 10,000 queues do not make one huge command.
fn store_split(pipe: &mut ::redis::Pipeline, keys: &Keys, tx: &NewTransaction, at: i64) {
    let expires_at = tx.expires_at.to_string();
    let meta = keys.meta(&tx.id);
    let fields = (tx.meta.iter()).flat_map(|(k, v)| [k.as_bytes(), v.as_bytes()]);
    pipe.add_command(command("HSET", iter::once(meta.as_bytes()).chain(fields)));
    pipe.add_command(command(
        "EXPIREAT",
        [meta.as_bytes(), expires_at.as_bytes()],
    ));
    if tx.queues.is_empty() {
        return;
    }
    let (state, history) = (keys.state(&tx.id), keys.history(&tx.id));
    let pending = DeliveryState::Pending.as_str();
    for batch in tx.queues.chunks(BATCH) {
        let states = batch
            .iter()
            .flat_map(|q| [q.as_bytes(), pending.as_bytes()]);
        pipe.add_command(command("HSET", iter::once(state.as_bytes()).chain(states)));
    }
    // The history keeps the latest lines: of a provisioning into more queues, the last.
    let first_kept = tx.queues.len().saturating_sub(HISTORY_LIMIT);
    let lines: Vec<String> = (tx.queues[first_kept..].iter())
        .map(|queue| history_line(queue, DeliveryState::Pending, at))
        .collect();
    let lines = lines.iter().map(String::as_bytes);
    pipe.add_command(command(
        "RPUSH",
        iter::once(history.as_bytes()).chain(lines),
    ));
    for key in [&state, &history] {
        pipe.add_command(command("EXPIREAT", [key.as_bytes(), expires_at.as_bytes()]));
    }
}

/// A transaction's metadata as `tx_meta` or [`Record::load_meta`] gives it: the split layout's
/// field-value list (empty: gone) or the dense one's JSON (nil: gone). Metadata that cannot be
/// read (written by something else than a node) counts as gone, as PopBox counts a hash without
/// a payload, with a warning: failing instead would strand what a take already took.
pub(super) fn decode_meta(server: &Server, value: Value) -> Option<Meta> {
    let decoded = match value {
        Value::Nil => return None,
        Value::BulkString(value) => Dense::decode(&value).map(|record| record.m.into_owned()),
        fields => ::redis::from_redis_value::<Vec<(String, String)>>(fields)
            .map(|fields| fields.into_iter().collect())
            .map_err(|e| e.to_string()),
    };
    match decoded {
        Ok(meta) => (!Meta::is_empty(&meta)).then_some(meta),
        Err(reason) => {
            warn!(server = %server.name, %reason, "unreadable transaction metadata, taken as gone");
            None
        }
    }
}

const SPLIT_LUA: &str = r#"
    local function tx_meta(rec)
        local meta = redis.call('HGETALL', rec .. ':meta')
        if #meta == 0 then return false end
        return meta
    end

    local function tx_live(rec) return redis.call('EXISTS', rec .. ':meta') == 1 end

    local function tx_priority(rec) return redis.call('HGET', rec .. ':meta', 'priority') end

    local function tx_state(rec, queue) return redis.call('HGET', rec .. ':state', queue) end

    local function tx_mark(rec, queue, state, line)
        redis.call('HSET', rec .. ':state', queue, state)
        if not line then return end
        local key = rec .. ':history'
        local len = redis.call('RPUSH', key, line)
        if len > HISTORY_LIMIT then redis.call('LTRIM', key, -HISTORY_LIMIT, -1) end
        if len == 1 then
            local ttl = redis.call('PTTL', rec .. ':meta')
            if ttl > 0 then redis.call('PEXPIRE', key, ttl) end
        end
    end

    local function tx_update(rec, at, from)
        local meta = rec .. ':meta'
        if redis.call('EXISTS', meta) == 0 then return 0 end
        if #ARGV >= from then redis.call('HSET', meta, unpack(ARGV, from)) end
        if at ~= '' then
            for _, key in ipairs({meta, rec .. ':state', rec .. ':history'}) do
                redis.call('EXPIREAT', key, at)
            end
        end
        return 1
    end
"#;

const DENSE_LUA: &str = r#"
    local function tx_meta(rec) return redis.call('GET', rec .. ':tx') end

    local function tx_live(rec) return redis.call('EXISTS', rec .. ':tx') == 1 end

    -- The record decoded, and its expiry; nil when gone, or when something else than a node
    -- wrote it: then it counts as gone, as the node counts metadata it cannot read.
    local function tx_record(rec)
        local value = redis.call('GET', rec .. ':tx')
        if not value then return nil end
        local expiry, json = string.match(value, '^(%d+) (.*)$')
        if not expiry then return nil end
        local ok, record = pcall(cjson.decode, json)
        if ok and type(record) == 'table' and type(record.m) == 'table' then
            return record, expiry
        end
        return nil
    end

    local function tx_priority(rec)
        local record = tx_record(rec)
        return record and record.m.priority or false
    end

    -- A queue the push named and nothing changed since is Pending.
    local function tx_state(rec, queue)
        local state = redis.call('HGET', rec .. ':ch', 's:' .. queue)
        if state then return state end
        local record = tx_record(rec)
        if not (record and type(record.q) == 'table') then return false end
        for _, pushed in ipairs(record.q) do
            if pushed == queue then return 'Pending' end
        end
        return false
    end

    local function tx_mark(rec, queue, state, line, value)
        local key = rec .. ':ch'
        local n = redis.call('HINCRBY', key, 'h', 1)
        if line then
            redis.call('HSET', key, 's:' .. queue, state, 'h:' .. n, line)
            if n > HISTORY_LIMIT then redis.call('HDEL', key, 'h:' .. (n - HISTORY_LIMIT)) end
        else
            redis.call('HSET', key, 's:' .. queue, state)
        end
        -- The first change makes the hash: it expires with the transaction.
        if n ~= 1 then return end
        local expiry = value and string.match(value, '^%d+')
        if expiry then
            redis.call('EXPIREAT', key, expiry)
        else
            local ttl = redis.call('PTTL', rec .. ':tx')
            if ttl > 0 then redis.call('PEXPIRE', key, ttl) end
        end
    end

    local function tx_update(rec, at, from)
        local key = rec .. ':tx'
        local record, expiry = tx_record(rec)
        if not record then return 0 end
        if #ARGV >= from or at ~= '' then
            for i = from, #ARGV, 2 do record.m[ARGV[i]] = ARGV[i + 1] end
            -- cjson writes an empty list as an object: the node reads a missing one as empty.
            if type(record.q) == 'table' and next(record.q) == nil then record.q = nil end
            if at ~= '' then expiry = at end
            redis.call('SET', key, expiry .. ' ' .. cjson.encode(record), 'KEEPTTL')
        end
        if at ~= '' then
            redis.call('EXPIREAT', key, at)
            redis.call('EXPIREAT', rec .. ':ch', at)
        end
        return 1
    end
"#;
