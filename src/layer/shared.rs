//! The settings the layer hands to every service it makes, and that the services hand to
//! their futures and bodies: one [`Shared`], behind an `Arc`.

use std::sync::Arc;

use super::addr::TrustedProxies;
use super::lookup_service::Lookup;
use super::memo::Memo;
use super::wrapped::HintsSeen;
use crate::dispatcher::Dispatcher;
use crate::event::SourceRecord;

/// Settings shared by all clones of the layer and its services.
#[derive(Clone)]
pub(crate) struct Shared {
    pub(crate) dispatcher: Dispatcher,
    pub(crate) source: SourceRecord,
    pub(crate) base_url: Option<String>,
    pub(crate) include_references: bool,
    pub(crate) skip_head_pulls: bool,
    pub(crate) pull_on_body_end: bool,
    pub(crate) trusted_proxies: Option<TrustedProxies>,
    pub(crate) lookup: Option<Arc<dyn Lookup>>,
    /// Without a lookup service, ask the wrapped service itself (the default).
    pub(crate) wrapped_lookups: bool,
    /// Whether the registry attaches `EventHint`s, as far as its responses told.
    pub(crate) hints: Arc<HintsSeen>,
    /// Sizes and upload offsets seen, to spare lookups.
    pub(crate) memo: Option<Arc<Memo>>,
}
