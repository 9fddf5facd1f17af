//! The registry's `/metrics`: endpoint metrics in Prometheus text format, with Distribution 3's
//! names and ours.

use registry_notify::notifications::NotificationsHandle;

/// Endpoint metrics in Prometheus text format, with Distribution 3's names.
pub fn render(handle: &NotificationsHandle) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let snaps = handle.metrics();
    s.push_str("# TYPE registry_notifications_events_total counter\n");
    for m in &snaps {
        for (kind, v) in [
            ("Events", m.events),
            ("Successes", m.successes),
            ("Failures", m.failures),
            ("Errors", m.errors),
        ] {
            let _ = writeln!(
                s,
                "registry_notifications_events_total{{endpoint={:?},type=\"{kind}\"}} {v}",
                m.name
            );
        }
    }
    s.push_str("# TYPE registry_notifications_pending_total gauge\n");
    for m in &snaps {
        let _ = writeln!(
            s,
            "registry_notifications_pending_total{{endpoint={:?}}} {}",
            m.name, m.pending
        );
    }
    s.push_str("# TYPE registry_notifications_status_total counter\n");
    for m in &snaps {
        for (code, v) in &m.statuses {
            let _ = writeln!(
                s,
                "registry_notifications_status_total{{code={code:?},endpoint={:?}}} {v}",
                m.name
            );
        }
    }
    s.push_str("# TYPE registry_notify_endpoint_events counter\n");
    for m in &snaps {
        for (kind, v) in [
            ("delivered", m.delivered),
            ("dropped", m.dropped),
            ("filtered", m.filtered),
            ("dead_lettered", m.dead_lettered),
            ("retries", m.retries),
        ] {
            let _ = writeln!(
                s,
                "registry_notify_endpoint_events{{endpoint={:?},kind=\"{kind}\"}} {v}",
                m.name
            );
        }
        let _ = writeln!(
            s,
            "registry_notify_breaker_open{{endpoint={:?}}} {}",
            m.name,
            u8::from(m.breaker_open)
        );
    }
    s
}
