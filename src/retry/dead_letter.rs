//! Batches the retry stage gave up on.

use std::sync::Arc;

use crate::event::Batch;

/// A batch the retry stage gave up on, handed to the endpoint's dead-letter hook.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct DeadLetter {
    /// Endpoint name.
    pub endpoint: String,
    /// The events, exactly as they were sent.
    pub batch: Batch,
    /// Why delivery stopped (the last error, never containing secrets).
    pub reason: String,
    /// How many attempts were made.
    pub attempts: u32,
}

/// Receives the batches an endpoint gave up on (see
/// [`EndpointBuilder::dead_letter`](crate::endpoint::EndpointBuilder::dead_letter)).
pub type DeadLetterHandler = Arc<dyn Fn(DeadLetter) + Send + Sync>;
