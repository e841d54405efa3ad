//! `relaybox ranges show|init`: the customer-ID pool as an operator sees and changes it,
//! straight in the configured store. (With the embedded store, run `init` while the node is
//! stopped: a running node keeps its own copy of the book.)

use std::time::Duration;

use super::IdRange;
use crate::config::{MAX_CUSTOMER_ID, Settings};
use crate::store;

/// The pool, the range master and every node's blocks, as text.
pub async fn show(settings: &Settings) -> Result<String, String> {
    let store = store::open(settings).await.map_err(|e| e.to_string())?;
    let pool = store.pool().await.map_err(|e| e.to_string())?;
    let holder = store
        .pool_lease("", Duration::from_secs(1), false)
        .await
        .map_err(|e| e.to_string())?;
    let blocks = store.blocks().await.map_err(|e| e.to_string())?;
    let mut out = match pool {
        Some(pool) => format!("pool: {pool} ({} IDs left)\n", pool.len()),
        None => "pool: none in this store\n".to_owned(),
    };
    out += &format!("range master: {}\n", holder.as_deref().unwrap_or("none"));
    for (node, blocks) in blocks {
        let listed: Vec<String> = blocks.iter().map(IdRange::to_string).collect();
        out += &format!("{node}: {}\n", listed.join(", "));
    }
    Ok(out)
}

/// Sets the pool to `from..=to`. An existing pool is replaced only with `force`, and never by
/// one that starts below it (those IDs have been handed out).
pub async fn init(settings: &Settings, from: u64, to: u64, force: bool) -> Result<String, String> {
    if !(0 < from && from <= to && to <= MAX_CUSTOMER_ID) {
        return Err(format!(
            "the pool must satisfy 0 < from <= to <= {MAX_CUSTOMER_ID}"
        ));
    }
    let store = store::open(settings).await.map_err(|e| e.to_string())?;
    let pool = IdRange { from, to };
    if let Some(current) = store.pool().await.map_err(|e| e.to_string())? {
        if !force {
            return Err(format!("a pool exists ({current}); --force replaces it"));
        }
        if from < current.from {
            return Err(format!(
                "IDs below {} have been handed out already; the new pool must start at or above it",
                current.from
            ));
        }
    }
    store
        .pool_seed(pool, true)
        .await
        .map_err(|e| e.to_string())?;
    Ok(format!("pool: {pool}"))
}
