//! Where a desktop (a My Notes agent) is attached.

use serde::{Deserialize, Serialize};

/// Where a desktop is attached: the node's public `host[:port]` and its instance id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Location {
    pub host: String,
    pub port: String,
}
