//! What can go wrong in an inbox operation, in words a client can act on.

use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum InboxError {
    /// The request is malformed; every problem found is listed.
    #[error("invalid request: {}", .0.join("; "))]
    Invalid(Vec<String>),
    /// The store could not do the work.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The node is shutting down or the actor that owns the data is gone.
    #[error("the node is shutting down")]
    ShuttingDown,
}

impl InboxError {
    pub fn invalid(message: impl Into<String>) -> Self {
        InboxError::Invalid(vec![message.into()])
    }
}

impl From<actix::MailboxError> for InboxError {
    fn from(_: actix::MailboxError) -> Self {
        InboxError::ShuttingDown
    }
}
