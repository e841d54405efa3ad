//! How a transaction is kept on its server: its metadata, its state in each queue, and the
//! history of those states. Two layouts:
//!
//! - **split** (PopBox's, where every transaction lives on `store.redis_transactions`, so that
//!   a running PopBox reads the same keys): hashes `PB:T|<id>:meta` (the fields) and
//!   `PB:T|<id>:state` (queue id → state), and list `PB:T|<id>:history` (state changes as JSON);
//! - **dense** (the default, where transactions spread over the set or a cluster): one hash
//!   `PB:T|<id>:tx`, with the metadata as a JSON object in field `m`, each queue's state in
//!   `s:<queue id>`, and the history as numbered lines `h:<n>`, `h` counting them (the latest
//!   [`HISTORY_LIMIT`] are kept).
//!
//! A push makes one key with one expiry in the dense layout instead of three and three, and
//! one hash field instead of one per metadata field: 0.6 of the Redis CPU of a push in PopBox's
//! layout (see `tools/ab` with `AB_FIGURE=redis-cpu`). The push writes each queue's `Pending`
//! state and line although they could be derived from its queues: a push that wrote only its
//! metadata (one `SET … EXAT`) cost half, but the first change then had to make a second key
//! with an expiry, and on fan-outs a small hash that Redis scans at each change, so a pop cost a
//! tenth more and a message pushed and popped more in all. Scripts name a transaction as
//! [`Record::name`] says (the dense record's key, declared, so that a Redis Cluster moving its
//! slot runs the script where the record is) and reach its keys through the Lua of
//! [`Record::lua`], so that each script is written once for both.

use ::redis::Value;

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

    /// How scripts name a transaction (`rec`), in KEYS: the dense record's one key, declared so
    /// that a cluster moving its slot runs the script where the record is; in PopBox's layout
    /// (never on a cluster) the prefix of its three keys ([`Keys::transaction`]).
    pub(super) fn name(self, keys: &Keys, id: &TxId) -> String {
        match self {
            Record::Split => keys.transaction(id),
            Record::Dense => keys.record(id),
        }
    }

    /// The Lua a script that touches transactions starts with (after the shared prelude): each
    /// takes the transaction's name ([`Record::name`]: `rec`) and returns what Redis would.
    ///
    /// - `tx_of(tag, ref)`: the name of the transaction a queue's reference `ref` (`PB:T|<id>`)
    ///   points at, on the shard whose keys start with `tag`;
    /// - `tx_meta(rec)`: the metadata (false when the transaction is gone), as [`decode_meta`]
    ///   reads it: the hash's field-value list, or the dense record's JSON;
    /// - `tx_live(rec)`, `tx_priority(rec)`: whether it exists; its priority (`H`/`L`) or false;
    /// - `tx_state(rec, queue)`: its state in a queue (false: none);
    /// - `tx_mark(rec, queue, state, line)`: sets its state in a queue and, unless `line` is
    ///   false, appends that change to its history, keeping the latest `HISTORY_LIMIT`; only
    ///   ever on a live transaction (a dense record would be made anew, without expiry). The
    ///   node writes the change's JSON line: building it here would cost Redis, which every
    ///   node shares, more than the change. Dense, it is two calls (count, then state and line
    ///   in one `HSET`): each call from Lua costs Redis about as much as a command;
    /// - `tx_update(rec, at, from)`: merges the field-value pairs of ARGV from index `from` into
    ///   the metadata and, when `at` is not empty, moves the expiry there; 0 when gone, else 1.
    pub(super) fn lua(self) -> &'static str {
        match self {
            Record::Split => SPLIT_LUA,
            Record::Dense => DENSE_LUA,
        }
    }

    /// Adds to `pipe` the commands that store a new transaction: its metadata, each queue's state
    /// `Pending`, and the history of those states, all expiring with the transaction. Fields
    /// and lines are written in batches, so that 10,000 queues do not make one huge command. The
    /// pipeline is meant to be read as `()`: its replies are not `ignore`d one by one, which would
    /// cost a hash-set insert each for nothing.
    pub(super) fn store(self, pipe: &mut ::redis::Pipeline, keys: &Keys, tx: &NewTransaction) {
        let at = unix_now_ms();
        // The history keeps the latest lines: of a provisioning into more queues, the last.
        let first_kept = tx.queues.len().saturating_sub(HISTORY_LIMIT);
        let lines = (tx.queues.iter().enumerate().skip(first_kept))
            .map(|(n, queue)| (n + 1, history_line(queue, DeliveryState::Pending, at)));
        match self {
            Record::Split => store_split(pipe, keys, tx, lines.map(|(_, line)| line).collect()),
            Record::Dense => store_dense(pipe, keys, tx, lines),
        }
    }

    /// Adds to `pipe` the command that loads a transaction's metadata, for [`decode_meta`].
    pub(super) fn load_meta(self, pipe: &mut ::redis::Pipeline, keys: &Keys, id: &TxId) {
        match self {
            Record::Split => pipe.hgetall(keys.meta(id)),
            Record::Dense => pipe.hget(keys.record(id), "m"),
        };
    }

    /// A transaction's metadata, if it is live.
    pub(super) async fn meta(self, server: &Server, id: &TxId) -> StoreResult<Option<Meta>> {
        let mut pipe = ::redis::pipe();
        self.load_meta(&mut pipe, &server.keys, id);
        let (value,): (Value,) = server.pipeline(&pipe).await?;
        Ok(decode_meta(server, value))
    }

    /// A transaction's state in each of its queues.
    pub(super) async fn states(
        self,
        server: &Server,
        id: &TxId,
    ) -> StoreResult<Vec<(String, String)>> {
        let keys = &server.keys;
        let key = match self {
            Record::Split => keys.state(id),
            Record::Dense => keys.record(id),
        };
        let fields: Vec<(String, String)> =
            (server.conn().hgetall(key).await).map_err(|e| server.error(e))?;
        Ok(match self {
            Record::Split => fields,
            Record::Dense => (fields.into_iter())
                .filter_map(|(k, v)| Some((k.strip_prefix(STATE_FIELD)?.to_owned(), v)))
                .collect(),
        })
    }

    /// A transaction's history lines, oldest first.
    pub(super) async fn history(self, server: &Server, id: &TxId) -> StoreResult<Vec<String>> {
        let keys = &server.keys;
        let mut conn = server.conn();
        let answer = match self {
            Record::Split => conn.lrange(keys.history(id), 0, -1).await,
            Record::Dense => {
                conn.hgetall(keys.record(id))
                    .await
                    .map(|fields: Vec<(String, String)>| {
                        let mut lines: Vec<(u64, String)> = (fields.into_iter())
                            .filter_map(|(k, v)| {
                                Some((k.strip_prefix(HISTORY_FIELD)?.parse().ok()?, v))
                            })
                            .collect();
                        lines.sort_unstable_by_key(|(n, _)| *n);
                        lines.into_iter().map(|(_, line)| line).collect()
                    })
            }
        };
        answer.map_err(|e| server.error(e))
    }

    /// The keys of a transaction (its held push apart).
    pub(super) fn keys(self, keys: &Keys, id: &TxId) -> Vec<String> {
        match self {
            Record::Split => vec![keys.meta(id), keys.state(id), keys.history(id)],
            Record::Dense => vec![keys.record(id)],
        }
    }
}

/// How many queues' states one command writes at most.
const BATCH: usize = 1000;

/// [`Record::store`] in PopBox's keys, with the history `lines`.
fn store_split(pipe: &mut ::redis::Pipeline, keys: &Keys, tx: &NewTransaction, lines: Vec<String>) {
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
    let lines = lines.iter().map(String::as_bytes);
    pipe.add_command(command(
        "RPUSH",
        iter::once(history.as_bytes()).chain(lines),
    ));
    for key in [&state, &history] {
        pipe.add_command(command("EXPIREAT", [key.as_bytes(), expires_at.as_bytes()]));
    }
}

/// [`Record::store`] in one hash, with the history `lines` numbered.
fn store_dense(
    pipe: &mut ::redis::Pipeline,
    keys: &Keys,
    tx: &NewTransaction,
    lines: impl Iterator<Item = (usize, String)>,
) {
    let record = keys.record(&tx.id);
    let meta = serde_json::to_string(&tx.meta).expect("metadata serialises");
    let mut fields: Vec<String> = vec!["m".to_owned(), meta];
    let pending = DeliveryState::Pending.as_str();
    for queue in &tx.queues {
        fields.extend([[STATE_FIELD, queue.as_str()].concat(), pending.to_owned()]);
    }
    for (n, line) in lines {
        fields.extend([format!("{HISTORY_FIELD}{n}"), line]);
    }
    fields.extend(["h".to_owned(), tx.queues.len().to_string()]);
    for batch in fields.chunks(2 * BATCH) {
        let batch = batch.iter().map(String::as_bytes);
        pipe.add_command(command("HSET", iter::once(record.as_bytes()).chain(batch)));
    }
    let expires_at = tx.expires_at.to_string();
    pipe.add_command(command(
        "EXPIREAT",
        [record.as_bytes(), expires_at.as_bytes()],
    ));
}

/// A transaction's metadata as `tx_meta` or [`Record::load_meta`] gives it: the split layout's
/// field-value list (empty: gone) or the dense one's JSON (nil: gone). Metadata that cannot be
/// read (written by something else than a node) counts as gone, as PopBox counts a hash without
/// a payload, with a warning: failing instead would strand what a take already took.
pub(super) fn decode_meta(server: &Server, value: Value) -> Option<Meta> {
    let decoded = match value {
        Value::Nil => return None,
        Value::BulkString(json) => serde_json::from_slice(&json).map_err(|e| e.to_string()),
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
    local function tx_of(tag, ref) return tag .. ref end

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
    local function tx_of(tag, ref) return tag .. ref .. ':tx' end

    local function tx_meta(rec) return redis.call('HGET', rec, 'm') end

    local function tx_live(rec) return redis.call('EXISTS', rec) == 1 end

    -- The metadata decoded; nil when gone, or when something else than a node wrote it: then
    -- it counts as gone, as the node counts metadata it cannot read.
    local function tx_decoded(rec)
        local json = tx_meta(rec)
        if not json then return nil end
        local ok, meta = pcall(cjson.decode, json)
        if ok and type(meta) == 'table' then return meta end
        return nil
    end

    local function tx_priority(rec)
        local meta = tx_decoded(rec)
        return meta and meta.priority or false
    end

    local function tx_state(rec, queue) return redis.call('HGET', rec, 's:' .. queue) end

    local function tx_mark(rec, queue, state, line)
        if not line then
            redis.call('HSET', rec, 's:' .. queue, state)
            return
        end
        local n = redis.call('HINCRBY', rec, 'h', 1)
        redis.call('HSET', rec, 's:' .. queue, state, 'h:' .. n, line)
        if n > HISTORY_LIMIT then redis.call('HDEL', rec, 'h:' .. (n - HISTORY_LIMIT)) end
    end

    local function tx_update(rec, at, from)
        local meta = tx_decoded(rec)
        if not meta then return 0 end
        if #ARGV >= from then
            for i = from, #ARGV, 2 do meta[ARGV[i]] = ARGV[i + 1] end
            redis.call('HSET', rec, 'm', cjson.encode(meta))
        end
        if at ~= '' then redis.call('EXPIREAT', rec, at) end
        return 1
    end
"#;
