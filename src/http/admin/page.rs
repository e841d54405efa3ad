//! How the admin lists are asked for: `?limit=N&after=<cursor>`, the cursor being the last
//! item's, as the previous page's `next` gave it.

use serde::Deserialize;

use super::super::response::ApiError;

/// Items a page holds unless `limit` says otherwise, and the most it may.
const DEFAULT_LIMIT: usize = 100;
const MOST: usize = 1000;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Page {
    pub limit: Option<usize>,
    pub after: Option<String>,
}

impl Page {
    /// The page `query` asks for; a `400` naming what is wrong with it.
    pub fn of(query: &str) -> Result<Self, ApiError> {
        let page: Page = serde_urlencoded::from_str(query)
            .map_err(|e| ApiError::bad_request(format!("bad query: {e}")))?;
        if page.limit.is_some_and(|n| n == 0 || n > MOST) {
            return Err(ApiError::bad_request(format!(
                "limit must be from 1 to {MOST}"
            )));
        }
        Ok(page)
    }

    pub fn limit(&self) -> usize {
        self.limit.unwrap_or(DEFAULT_LIMIT)
    }
}
