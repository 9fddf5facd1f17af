//! The crate's `tracing` output captured in memory, for tests that check what is (and is not)
//! logged.

use std::io;
use std::sync::{Arc, Mutex};

/// Everything a `tracing` subscriber wrote, as text.
#[derive(Clone, Default)]
pub struct Logs(Arc<Mutex<Vec<u8>>>);

impl Logs {
    /// Captures every level of this thread's `tracing` events (without colours) until the
    /// guard drops.
    pub fn capture() -> (Self, tracing::subscriber::DefaultGuard) {
        Self::capture_with(tracing_subscriber::fmt::format::FmtSpan::NONE)
    }

    /// Like [`Logs::capture`], and also a line when each span closes, with its fields.
    pub fn capture_spans() -> (Self, tracing::subscriber::DefaultGuard) {
        Self::capture_with(tracing_subscriber::fmt::format::FmtSpan::CLOSE)
    }

    fn capture_with(
        spans: tracing_subscriber::fmt::format::FmtSpan,
    ) -> (Self, tracing::subscriber::DefaultGuard) {
        let logs = Logs::default();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(logs.clone())
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_span_events(spans)
            .finish();
        let guard = tracing::subscriber::set_default(subscriber);
        (logs, guard)
    }

    /// What was written so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }

    /// How many lines at `level` (e.g. `"WARN"`) contain `containing`.
    pub fn lines(&self, level: &str, containing: &str) -> usize {
        self.text()
            .lines()
            .filter(|l| l.contains(level) && l.contains(containing))
            .count()
    }
}

impl io::Write for Logs {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Logs {
    type Writer = Logs;

    fn make_writer(&'a self) -> Logs {
        self.clone()
    }
}
