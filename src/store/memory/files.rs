//! What the embedded store keeps on disk, each a JSON file in `node.data_dir`: read whole at
//! start, and written whole (a new file renamed over the old, after fsync) on each change.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::store::{StoreError, StoreResult};

fn failed(path: &Path, e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend {
        shard: "embedded".to_owned(),
        reason: format!("{}: {e}", path.display()),
    }
}

/// The file `name` in `dir` (created when missing), and what it holds (the default when it
/// does not exist yet).
pub fn load<T: DeserializeOwned + Default>(dir: &Path, name: &str) -> StoreResult<(T, PathBuf)> {
    std::fs::create_dir_all(dir).map_err(|e| failed(dir, e))?;
    let file = dir.join(name);
    let value = match std::fs::read(&file) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| failed(&file, e))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => T::default(),
        Err(e) => return Err(failed(&file, e)),
    };
    Ok((value, file))
}

/// Writes `value` to `file`, all or nothing.
pub fn save(file: &Path, value: &impl Serialize) -> StoreResult<()> {
    let fresh = file.with_extension("json.new");
    let write = || -> std::io::Result<()> {
        let mut out = std::fs::File::create(&fresh)?;
        out.write_all(&serde_json::to_vec(value).expect("what is kept serialises"))?;
        out.sync_all()?;
        std::fs::rename(&fresh, file)
    };
    write().map_err(|e| failed(file, e))
}
