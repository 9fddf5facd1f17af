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
    let mut id = String::with_capacity(first.id.len() + 8);
    if first.id.bytes().all(|b| b.is_ascii_graphic()) {
        // The usual id (a UUID): copied whole.
        id.push_str(&first.id);
    } else {
        id.extend(
            first
                .id
                .chars()
                .map(|c| if c.is_ascii_graphic() { c } else { '_' }),
        );
    }
    if events.len() > 1 {
        use std::fmt::Write;
        let _ = write!(id, "+{}", events.len() - 1);
    }
    id
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Action, Target};
    use proptest::prelude::*;

    fn with_id(id: &str) -> Event {
        let mut e = Event::new(Action::Push, Target::default());
        e.id = id.into();
        e
    }

    /// The id as the definition says: every character that is not visible ASCII replaced by
    /// `_`, and `+<n-1>` for a batch of `n`.
    fn by_definition(id: &str, n: usize) -> String {
        let mut want: String = id
            .chars()
            .map(|c| if c.is_ascii_graphic() { c } else { '_' })
            .collect();
        if n > 1 {
            want.push_str(&format!("+{}", n - 1));
        }
        want
    }

    #[test]
    fn ids_as_defined() {
        assert_eq!(message_id(&[]), "empty");
        for (id, n) in [
            ("0191-a", 1),
            ("0191-a", 2),
            ("a b\tc\u{e9}", 1),
            ("", 3),
            ("x", 1000),
        ] {
            let events = vec![with_id(id); n];
            assert_eq!(message_id(&events), by_definition(id, n), "{id:?} × {n}");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn any_id_is_a_header_value(id in ".{0,40}", n in 1usize..300) {
            let events = vec![with_id(&id); n];
            let got = message_id(&events);
            prop_assert_eq!(&got, &by_definition(&id, n));
            prop_assert!(http::HeaderValue::from_str(&got).is_ok());
        }
    }
}
