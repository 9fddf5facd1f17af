//! The stable id of a batch of events.

use super::Event;

/// The message id of a batch: the event id for a single event, `<first id>+<n-1>` for `n`
/// events (queues are FIFO, so a batch re-read after a restart is the same range of
/// events and gets the same id). Characters that are not visible ASCII are replaced by `_`
/// so the id is always a valid header value; `empty` for an empty batch.
///
/// It is the `webhook-id` of [signed](crate::signing) requests and the
/// `message_id` of the delivery log's attempts.
///
/// ```
/// use registry_notify::event::message_id;
/// use registry_notify::{Action, Event, Target};
/// let mut a = Event::new(Action::Push, Target::default());
/// a.id = "0191-a".into();
/// let b = Event::new(Action::Push, Target::default());
/// assert_eq!(message_id(std::slice::from_ref(&a)), "0191-a");
/// assert_eq!(message_id(&[a, b]), "0191-a+1");
/// ```
pub fn message_id(events: &[Event]) -> String {
    let Some(first) = events.first() else {
        return "empty".to_owned();
    };
    let mut id: String = first
        .id
        .chars()
        .map(|c| if c.is_ascii_graphic() { c } else { '_' })
        .collect();
    if events.len() > 1 {
        id.push('+');
        id.push_str(&(events.len() - 1).to_string());
    }
    id
}
