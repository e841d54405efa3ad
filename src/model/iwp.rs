//! The names of the protocol's `X-IWP-…` headers (as `http` spells header names: lower case;
//! the relay writes them capitalised per word, as the original service did).

pub const PRODUCT_UNIV_ID: &str = "x-iwp-productunivid";
pub const REQUEST_ID: &str = "x-iwp-requestid";
pub const RESPONSE_TYPE: &str = "x-iwp-responsetype";
pub const HOST: &str = "x-iwp-host";
pub const PORT: &str = "x-iwp-port";
pub const RESPONSE_CODE: &str = "x-iwp-responsecode";
pub const REASON: &str = "x-iwp-reason";
/// Node to node: the other regions a node knows (comma-separated), in answer to `/hello`.
pub const HOSTS: &str = "x-iwp-hosts";
/// Node to node: a block of customer IDs, and the size asked for.
pub const RANGE_FROM: &str = "x-iwp-range-from";
pub const RANGE_TO: &str = "x-iwp-range-to";
pub const RANGE_SIZE: &str = "x-iwp-range-size";
/// Node to node: a call passed on once already (not to be passed on again).
pub const FORWARDED: &str = "x-iwp-forwarded";
/// Node to node: the `[cluster] secret`.
pub const SECRET: &str = "x-iwp-secret";
