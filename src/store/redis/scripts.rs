//! The Lua scripts that make each store operation one atomic step on its server.
//!
//! A script declares in KEYS every key it touches that it can name in advance. Those that also
//! reach keys they find as they go (transactions of references taken from a list, queues of a
//! set, held pushes of a sorted set: `TAKE`, `RETURN_TAKEN`, `QUEUE_INFO`, `RETURN_DUE`,
//! `CLAIM_DUE`, `FORGET_WAITING`) declare [`Keys::steady`](super::keys::Keys::steady) last,
//! so that a Redis Cluster runs them only while their slot is not moving between masters.

use std::sync::LazyLock;

use ::redis::Script;

use super::record::Record;
use crate::store::HISTORY_LIMIT;

/// Lua shared by the scripts, so that each thing is written one way everywhere:
/// - `unacked_member`: a member of the set of unacknowledged deliveries, naming the queue (full
///   key and bare id) and the transaction;
/// - `put_back`: a reference back at the head of a list, no longer awaiting an acknowledgement;
/// - `count_waiting`: moves one node's count of the consumers waiting on a queue (field
///   `blocked:<node>` of its `userInfo` hash) by `by`, never below nothing: a count that would
///   fall to 0 or under goes (a late decrement after the server lost its data must not hide the
///   next waiter). The node's set `waits` (`RB:W|<node>`) lists the hashes where it counts;
/// - `tag_of`: the hash tag a key starts with (`{rb17}` on a Redis Cluster, else empty): the
///   keys a script names itself are its shard's, after the same tag;
/// - `announce`: a push into a queue, on its channel: sharded (`SPUBLISH`) on a cluster.
///
/// The scripts that touch transactions ([`RecordScripts`]) add the Lua of their layout
/// ([`Record::lua`]).
const PRELUDE: &str = r#"
    local function tag_of(key)
        if string.byte(key, 1) ~= 123 then return '' end  -- no '{': a plain server's key
        return string.match(key, '^{[^}]*}') or ''
    end

    local function announce(channel, from)
        if tag_of(channel) == '' then
            redis.call('PUBLISH', channel, from)
        else
            redis.call('SPUBLISH', channel, from)
        end
    end

    local function unacked_member(key, id, tx) return cjson.encode({key, id, tx}) end

    local function put_back(list, ref, unacked, key, id)
        redis.call('LPUSH', list, ref)
        redis.call('ZREM', unacked, unacked_member(key, id, string.sub(ref, 6)))
    end

    local function count_waiting(info, field, by, waits)
        if redis.call('HINCRBY', info, field, by) <= 0 then
            redis.call('HDEL', info, field)
            redis.call('SREM', waits, info)
        elseif by > 0 then
            redis.call('SADD', waits, info)
        end
    end
"#;

/// A script whose source starts with the shared Lua above.
fn with_prelude(body: &str) -> Script {
    Script::new(&format!("{PRELUDE}{body}"))
}

/// The scripts that read or write transactions, in one record layout.
pub struct RecordScripts {
    pub take: Script,
    pub mark: Script,
    pub return_taken: Script,
    pub update: Script,
    pub ack_states: Script,
    pub reopen: Script,
}

static SPLIT: LazyLock<RecordScripts> = LazyLock::new(|| RecordScripts::new(Record::Split));
static DENSE: LazyLock<RecordScripts> = LazyLock::new(|| RecordScripts::new(Record::Dense));

impl RecordScripts {
    /// The scripts for transactions in `record`'s layout.
    pub fn of(record: Record) -> &'static RecordScripts {
        match record {
            Record::Split => &SPLIT,
            Record::Dense => &DENSE,
        }
    }

    fn new(record: Record) -> Self {
        let lua = record
            .lua()
            .replace("HISTORY_LIMIT", &HISTORY_LIMIT.to_string());
        let script = |body: &str| Script::new(&format!("{PRELUDE}{lua}{body}"));
        RecordScripts {
            take: script(TAKE),
            mark: script(MARK),
            return_taken: script(RETURN_TAKEN),
            update: script("return tx_update(KEYS[1], ARGV[1], 2)"),
            ack_states: script(ACK_STATES),
            reopen: script(REOPEN),
        }
    }
}

/// Takes up to ARGV[1] references, high list (KEYS[1]) first, then low (KEYS[2]), and records
/// what it took under the token key KEYS[3] (for ARGV[2] seconds): run again with the same token
/// (after a lost reply) it returns the same references instead of taking more. When ARGV[3] is a
/// queue id, it also sets each live transaction's state there to ARGV[4] and returns its metadata
/// (only possible when transactions live on this server). When ARGV[5] is a time, it is recorded
/// as the queue's `lastPopDate` in KEYS[4]. This node's count of waiters there (field ARGV[13];
/// the node's set of such hashes is KEYS[6]) goes up by ARGV[6] when nothing was taken, and
/// down by one when something was and ARGV[7] is set; a replay of a
/// recorded take changes nothing (so an empty counting take is recorded too). The record is
/// `[high, low, change of blocked]`, for `RETURN_TAKEN` to undo. When ARGV[8] is a
/// time (Unix ms), what is taken is due back then unless acknowledged: it joins the set KEYS[5]
/// (member: queue key ARGV[9], queue id ARGV[10], transaction). ARGV[11] is the history line of
/// the state change. ARGV[12] is set on a retry: only then can the token already be there.
/// Returns `{high, low, metas}`.
const TAKE: &str = r#"
        local taken
        local recorded = ARGV[12] ~= '' and redis.call('GET', KEYS[3])
        if recorded then
            local record = cjson.decode(recorded)
            taken = {record[1], record[2]}
        else
            local max = tonumber(ARGV[1])
            local high = redis.call('LPOP', KEYS[1], max) or {}
            local low = {}
            if #high < max then low = redis.call('LPOP', KEYS[2], max - #high) or {} end
            taken = {high, low}
            local count, newcomers, counted = #high + #low, tonumber(ARGV[6]), 0
            if count == 0 and newcomers > 0 then
                counted = newcomers
            elseif count > 0 and ARGV[7] ~= '' then
                counted = -1
            end
            if counted ~= 0 then count_waiting(KEYS[4], ARGV[13], counted, KEYS[6]) end
            if count > 0 or newcomers > 0 then
                redis.call('SET', KEYS[3], cjson.encode({high, low, counted}), 'EX', ARGV[2])
            end
            if ARGV[8] ~= '' then
                -- Fractions of a millisecond keep the order of one take when it falls due.
                local due, n = tonumber(ARGV[8]), 0
                for _, list in ipairs(taken) do
                    for _, ref in ipairs(list) do
                        local member = unacked_member(ARGV[9], ARGV[10], string.sub(ref, 6))
                        redis.call('ZADD', KEYS[5], due + n / 4096, member)
                        n = n + 1
                    end
                end
            end
        end
        if ARGV[5] ~= '' then redis.call('HSET', KEYS[4], 'lastPopDate', ARGV[5]) end
        local metas, tag = {}, tag_of(KEYS[1])
        if ARGV[3] ~= '' then
            for _, list in ipairs(taken) do
                for _, ref in ipairs(list) do
                    local rec = tx_of(tag, ref)
                    local meta = tx_meta(rec)
                    if meta then
                        -- A replayed take has recorded the change already.
                        tx_mark(rec, ARGV[3], ARGV[4], not recorded and ARGV[11])
                    end
                    metas[#metas + 1] = meta or {}
                end
            end
        end
        return {taken[1], taken[2], metas}
"#;

/// For each transaction (KEYS: their names, `Keys::transaction`): if it is live, sets its state
/// in queue ARGV[1] to ARGV[2] (history line ARGV[3]) and returns its metadata (`tx_meta`);
/// else returns an empty array for it.
const MARK: &str = r#"
        local out = {}
        for _, rec in ipairs(KEYS) do
            local meta = tx_meta(rec)
            if meta then
                tx_mark(rec, ARGV[1], ARGV[2], ARGV[3])
            end
            out[#out + 1] = meta or {}
        end
        return out
"#;

/// Puts references back at the head of their lists in their original order and announces the
/// queue, once per token: KEYS[3] remembers that it ran (a retry after a lost reply does
/// nothing). They are no longer awaiting an acknowledgement (set KEYS[4]). KEYS[1] high list,
/// KEYS[2] low list. ARGV: the queue's channel, the node announcing, token lifetime, queue key,
/// queue id, then pairs of (H|L, reference) in delivery order.
pub static REQUEUE: LazyLock<Script> = LazyLock::new(|| {
    with_prelude(
        r#"
        if not redis.call('SET', KEYS[3], 1, 'NX', 'EX', ARGV[3]) then return 0 end
        for i = #ARGV - 1, 6, -2 do
            local key = KEYS[2]
            if ARGV[i] == 'H' then key = KEYS[1] end
            put_back(key, ARGV[i + 1], KEYS[4], ARGV[4], ARGV[5])
        end
        announce(ARGV[1], ARGV[2])
        return 1
        "#,
    )
});

/// Undoes a take whose answer never reached its node (its retries outlasted `redis_recovery`):
/// the references recorded under its token KEYS[3] go back to the head of their lists (KEYS[1]
/// high, KEYS[2] low) in their original order, and no longer await an acknowledgement (set
/// KEYS[4]); the change the take made to this node's count of waiters (field ARGV[8] of KEYS[5];
/// its set of such hashes KEYS[6]) is undone, since the node never learnt of it. When ARGV[6] is the queue id (the transactions
/// live on this
/// server, so the take marked them), their states there go back to `Pending` (history line
/// ARGV[7]). The token is left recording an empty take: running this again, or a late retry of
/// the take, moves nothing. ARGV[1..5]: the queue's channel, the node announcing, token
/// lifetime, queue key, queue id. Returns how many references went back.
const RETURN_TAKEN: &str = r#"
        local recorded = redis.call('GET', KEYS[3])
        redis.call('SET', KEYS[3], '[[],[]]', 'EX', ARGV[3])
        if not recorded then return 0 end
        local taken, count, tag = cjson.decode(recorded), 0, tag_of(KEYS[1])
        local counted = tonumber(taken[3]) or 0
        if counted ~= 0 then count_waiting(KEYS[5], ARGV[8], -counted, KEYS[6]) end
        for p, list in ipairs({KEYS[1], KEYS[2]}) do
            local refs = taken[p]
            for i = #refs, 1, -1 do
                local ref = refs[i]
                put_back(list, ref, KEYS[4], ARGV[4], ARGV[5])
                local rec = tx_of(tag, ref)
                if ARGV[6] ~= '' and tx_live(rec) then
                    tx_mark(rec, ARGV[6], 'Pending', ARGV[7])
                end
                count = count + 1
            end
        end
        if count > 0 then announce(ARGV[1], ARGV[2]) end
        return count
"#;

/// Moves this node's count of waiters on a queue (field ARGV[1] of its `userInfo` hash KEYS[1])
/// by ARGV[2]; KEYS[2] is the node's set of such hashes.
pub static COUNT_WAITING: LazyLock<Script> =
    LazyLock::new(|| with_prelude("count_waiting(KEYS[1], ARGV[1], tonumber(ARGV[2]), KEYS[2])"));

/// Drops every count of waiters a node keeps on this server (field ARGV[1] of each hash in its
/// set KEYS[1]): after an outage, when it has answered all its waiters and counts anew.
pub static FORGET_WAITING: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
        for _, info in ipairs(redis.call('SMEMBERS', KEYS[1])) do
            redis.call('HDEL', info, ARGV[1])
        end
        redis.call('DEL', KEYS[1])
        "#,
    )
});

/// A queue's state: up to ARGV[1] references of each list (KEYS[1] high, KEYS[2] low), its
/// `lastPopDate` and whether anyone waits on it (from its `userInfo` hash KEYS[3]). Each node
/// counts its own waiters there (`blocked:<node>`); a count whose node no longer says it is
/// alive (`RB:N|<node>` has expired: the node died) is dropped. PopBox's own `blocked` counts
/// too. Returns `{high, low, lastPopDate or false, 0 or 1}`.
pub static QUEUE_INFO: LazyLock<Script> = LazyLock::new(|| {
    with_prelude(
        r#"
        local alive = tag_of(KEYS[1]) .. 'RB:N|'
        local high = redis.call('LRANGE', KEYS[1], 0, ARGV[1])
        local low = redis.call('LRANGE', KEYS[2], 0, ARGV[1])
        local fields = redis.call('HGETALL', KEYS[3])
        local last, blocked = false, 0
        for i = 1, #fields, 2 do
            local name, count = fields[i], tonumber(fields[i + 1]) or 0
            if name == 'lastPopDate' then
                last = fields[i + 1]
            elseif name == 'blocked' then
                if count > 0 then blocked = 1 end
            elseif string.sub(name, 1, 8) == 'blocked:' then
                if redis.call('EXISTS', alive .. string.sub(name, 9)) == 1 then
                    if count > 0 then blocked = 1 end
                else
                    redis.call('HDEL', KEYS[3], name)
                end
            end
        end
        return {high, low, last, blocked}
        "#,
    )
});

/// Up to ARGV[1] references without taking them, high first. Returns `{high, low}`.
pub static PEEK: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
        local max = tonumber(ARGV[1])
        local high = redis.call('LRANGE', KEYS[1], 0, max - 1)
        local low = {}
        if #high < max then low = redis.call('LRANGE', KEYS[2], 0, max - #high - 1) end
        return {high, low}
        "#,
    )
});

/// Keeps lists (KEYS) alive for at least ARGV[1] more seconds, never shortening them.
pub static EXTEND: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
        local ttl = tonumber(ARGV[1])
        for _, key in ipairs(KEYS) do
            local current = redis.call('TTL', key)
            if current ~= -2 and current < ttl then redis.call('EXPIRE', key, ttl) end
        end
        return 1
        "#,
    )
});

/// Changes the existing set KEYS[1]: adds ARGV[2..ARGV[1]+1], then removes the rest of ARGV (an
/// emptied set disappears, as Redis does). Returns 0, changing nothing, when the set does not
/// exist.
pub static GROUP_CHANGE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
        if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
        local adds = tonumber(ARGV[1])
        for i = 2, #ARGV do
            if i <= adds + 1 then
                redis.call('SADD', KEYS[1], ARGV[i])
            else
                redis.call('SREM', KEYS[1], ARGV[i])
            end
        end
        return 1
        "#,
    )
});

/// Sets pool KEYS[1] to ARGV[1]..ARGV[2], unless it exists and ARGV[3] is not `1`. Returns 1
/// when it was set.
pub static POOL_SEED: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
        if ARGV[3] ~= '1' and redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
        redis.call('HSET', KEYS[1], 'from', ARGV[1], 'to', ARGV[2])
        return 1
        "#,
    )
});

/// Takes or renews lease KEYS[1] for ARGV[1] (for ARGV[2] ms) when it is free or ARGV[1]'s,
/// if ARGV[3] is `1`; returns the holder (false: none).
pub static LEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
        local holder = redis.call('GET', KEYS[1])
        if ARGV[3] == '1' and (holder == false or holder == ARGV[1]) then
            redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
            return ARGV[1]
        end
        return holder
        "#,
    )
});

/// If ARGV[1] holds lease KEYS[2], cuts up to ARGV[2] IDs off the front of pool KEYS[1].
/// Returns {1, from, to}, {0} when the pool is exhausted (or missing), {-1} without the lease.
/// IDs stay below 2^53, where Lua's numbers are exact.
pub static POOL_CUT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
        if redis.call('GET', KEYS[2]) ~= ARGV[1] then return {-1} end
        local from = tonumber(redis.call('HGET', KEYS[1], 'from'))
        local to = tonumber(redis.call('HGET', KEYS[1], 'to'))
        if not from or not to or from > to then return {0} end
        local size = math.min(tonumber(ARGV[2]), to - from + 1)
        redis.call('HSET', KEYS[1], 'from', string.format('%.0f', from + size))
        return {1, from, from + size - 1}
        "#,
    )
});

/// Takes up to ARGV[1] IDs off the front of block list KEYS[1] (entries `from-to`). Returns
/// {1, from, to, left} or {0} when the list holds no IDs.
pub static BLOCK_TAKE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
        local function bounds(entry)
            local dash = string.find(entry, '-', 1, true)
            return tonumber(string.sub(entry, 1, dash - 1)), tonumber(string.sub(entry, dash + 1))
        end
        while true do
            local first = redis.call('LINDEX', KEYS[1], 0)
            if not first then return {0} end
            local from, to = bounds(first)
            if from <= to then
                local n = math.min(tonumber(ARGV[1]), to - from + 1)
                if from + n > to then
                    redis.call('LPOP', KEYS[1])
                else
                    redis.call('LSET', KEYS[1], 0, string.format('%.0f-%.0f', from + n, to))
                end
                local left = 0
                for _, entry in ipairs(redis.call('LRANGE', KEYS[1], 0, -1)) do
                    local f, t = bounds(entry)
                    if f <= t then left = left + (t - f + 1) end
                end
                return {1, from, from + n - 1, left}
            end
            redis.call('LPOP', KEYS[1])
        end
        "#,
    )
});

/// Counts a failed call to member ARGV[1] of hash KEYS[1]; past ARGV[2] failures the member
/// goes. Returns 1 when this call removed it.
pub static MEMBER_FAILED: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
        if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then return 0 end
        if redis.call('HINCRBY', KEYS[1], ARGV[1], 1) > tonumber(ARGV[2]) then
            redis.call('HDEL', KEYS[1], ARGV[1])
            return 1
        end
        return 0
        "#,
    )
});

/// Resets the failures of member ARGV[1] of hash KEYS[1], if it is one.
pub static MEMBER_OK: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
        if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then
            redis.call('HSET', KEYS[1], ARGV[1], 0)
        end
        return 0
        "#,
    )
});

/// On the transactions' server: for each transaction named KEYS[i] (`Keys::transaction`) that has a
/// state in queue ARGV[1], sets it to `Delivered` (history line ARGV[2]). Returns one 1 or 0
/// per transaction.
const ACK_STATES: &str = r#"
        local out = {}
        for _, rec in ipairs(KEYS) do
            if tx_state(rec, ARGV[1]) then
                tx_mark(rec, ARGV[1], 'Delivered', ARGV[2])
                out[#out + 1] = 1
            else
                out[#out + 1] = 0
            end
        end
        return out
"#;

/// On the queue's shard: the transactions ARGV[3..] taken from queue (key ARGV[1], id ARGV[2])
/// are no longer awaiting an acknowledgement (set KEYS[1]).
pub static FORGET_UNACKED: LazyLock<Script> = LazyLock::new(|| {
    with_prelude(
        r#"
        for i = 3, #ARGV do
            redis.call('ZREM', KEYS[1], unacked_member(ARGV[1], ARGV[2], ARGV[i]))
        end
        return 1
        "#,
    )
});

/// On the transactions' server, for unacknowledged deliveries due back: KEYS are their
/// transactions' names (`Keys::transaction`), ARGV pairs (queue id, history line). Each one
/// still live and not `Delivered` becomes `Pending`; returns its priority (`H`/`L`), or '' for
/// one that stays out.
const REOPEN: &str = r#"
        local out = {}
        for i, rec in ipairs(KEYS) do
            local queue = ARGV[2 * i - 1]
            local priority = tx_priority(rec)
            if priority and tx_state(rec, queue) ~= 'Delivered' then
                tx_mark(rec, queue, 'Pending', ARGV[2 * i])
                out[#out + 1] = priority
            else
                out[#out + 1] = ''
            end
        end
        return out
"#;

/// On a shard server: returns unacknowledged deliveries that are due back. ARGV[1] is where the
/// queues' channels start, ARGV[2] the node announcing, then triples (member of the set KEYS[1],
/// list to return it to or '', reference) in the order they fell due. Each member still in the
/// set leaves it and its reference goes to the head of the list, the longest overdue first in
/// line; a member already gone (acknowledged, or returned by another node) is skipped, so each
/// goes back once. Each queue that gained one (its list name without its tag and `PB:Q|H:`) is
/// announced on its channel, once. Returns how many went back.
pub static RETURN_DUE: LazyLock<Script> = LazyLock::new(|| {
    with_prelude(
        r#"
        local count, announced, skip = 0, {}, #tag_of(KEYS[1]) + 8
        for i = #ARGV - 2, 3, -3 do
            if redis.call('ZREM', KEYS[1], ARGV[i]) == 1 and ARGV[i + 1] ~= '' then
                redis.call('LPUSH', ARGV[i + 1], ARGV[i + 2])
                count = count + 1
                local queue = string.sub(ARGV[i + 1], skip)
                if not announced[queue] then
                    announced[queue] = true
                    announce(ARGV[1] .. queue, ARGV[2])
                end
            end
        end
        return count
        "#,
    )
});

/// On the transactions server: up to ARGV[3] held pushes due by ARGV[1] in the set KEYS[1],
/// each claimed until ARGV[2] (its score moves there). Returns their records; a member whose
/// record expired with its transaction is dropped.
pub static CLAIM_DUE: LazyLock<Script> = LazyLock::new(|| {
    with_prelude(
        r#"
        local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[3])
        local out, tag = {}, tag_of(KEYS[1])
        for _, id in ipairs(ids) do
            local push = redis.call('GET', tag .. 'PB:T|' .. id .. ':delayed')
            if push then
                redis.call('ZADD', KEYS[1], ARGV[2], id)
                out[#out + 1] = push
            else
                redis.call('ZREM', KEYS[1], id)
            end
        end
        return out
        "#,
    )
});

/// Runs a list of commands once per marker: if KEYS[1] is set, returns its value and does
/// nothing; else sets the first ARGV[3] keys of KEYS (the marks) to ARGV[1] (expiring at Unix
/// time ARGV[2]) and runs the commands, which follow in ARGV as their argument count, then
/// name and arguments. Returns false when it ran them. The rest of KEYS are the keys the
/// commands write: declared, so that a cluster moving the slot runs the script where they all
/// are, or nowhere yet (`TRYAGAIN`), and never where the marks alone are missing. Idempotent
/// provisioning wraps its MULTI's commands in it.
pub static ONCE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
        local held = redis.call('GET', KEYS[1])
        if held then return held end
        for m = 1, tonumber(ARGV[3]) do
            redis.call('SET', KEYS[m], ARGV[1], 'EXAT', ARGV[2])
        end
        local i = 4
        while i <= #ARGV do
            local n = tonumber(ARGV[i])
            redis.call(unpack(ARGV, i + 1, i + n))
            i = i + n + 1
        end
        return false
    "#,
    )
});
