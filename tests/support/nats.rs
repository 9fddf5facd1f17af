//! Debian's `nats-server` with JetStream, started by the NATS tests on 127.0.0.1 with a random
//! port and a temporary store.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use registry_notify::config::NatsSettings;

/// Hang guard for the server to start or stop; never an assertion about speed.
const START_GUARD: Duration = Duration::from_secs(30);

pub struct NatsServer {
    bin: PathBuf,
    dir: PathBuf,
    child: Option<Child>,
    args: Vec<String>,
    pub port: u16,
}

impl NatsServer {
    /// Starts `nats-server -js` on `port` (a random one for `None`) with its store in `dir` and
    /// extra command-line `args`; `None` (after a loud skip message, or a panic under
    /// REGISTRY_NOTIFY_REQUIRE_TOOLS) without the program.
    fn launch(dir: &Path, port: Option<u16>, args: &[&str]) -> Option<Self> {
        let bin = crate::support::require_tool("nats-server")?;
        let mut server = NatsServer {
            bin,
            dir: dir.to_owned(),
            child: None,
            args: args.iter().map(|a| a.to_string()).collect(),
            port: port.unwrap_or(0),
        };
        server.spawn(port);
        Some(server)
    }

    /// Starts `nats-server -js` on a random port with its store in `dir` (see [`launch`](Self::launch)).
    pub fn start(dir: &Path) -> Option<Self> {
        Self::launch(dir, None, &[])
    }

    /// Like [`start`](Self::start) on a given `port` (for a server that comes up later).
    pub fn start_on(dir: &Path, port: u16) -> Option<Self> {
        Self::launch(dir, Some(port), &[])
    }

    /// Like [`start`](Self::start) with extra command-line arguments (e.g. `--user`, `--pass`).
    pub fn start_with(dir: &Path, args: &[&str]) -> Option<Self> {
        Self::launch(dir, None, args)
    }

    /// `nats://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    pub fn settings(&self) -> NatsSettings {
        NatsSettings::new(self.url())
    }

    fn spawn(&mut self, port: Option<u16>) {
        std::fs::create_dir_all(self.dir.join("js")).unwrap();
        let port_arg = port.map_or("-1".to_owned(), |p| p.to_string());
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("nats-server.log"))
            .unwrap();
        let child = Command::new(&self.bin)
            .args(["-a", "127.0.0.1", "-p", &port_arg, "-js", "-sd"])
            .arg(self.dir.join("js"))
            .arg("--ports_file_dir")
            .arg(&self.dir)
            .args(&self.args)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start nats-server");
        let ports_file = self.dir.join(format!("nats-server_{}.ports", child.id()));
        self.child = Some(child);
        let start = Instant::now();
        loop {
            if let Ok(text) = std::fs::read_to_string(&ports_file) {
                let parsed: Result<serde_json::Value, _> = serde_json::from_str(&text);
                if let Some(url) = parsed.ok().and_then(|v| v["nats"][0].as_str().map(str::to_owned)) {
                    self.port = url.rsplit(':').next().unwrap().parse().unwrap();
                    break;
                }
            }
            assert!(
                start.elapsed() < START_GUARD,
                "nats-server did not start: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        // The ports file is written once the listener is up; JetStream may need a moment more.
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                start.elapsed() < START_GUARD,
                "nats-server not listening: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops the server gracefully (SIGTERM: it flushes its store) and waits for it.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let start = Instant::now();
            while child.try_wait().ok().flatten().is_none() {
                if start.elapsed() > START_GUARD {
                    let _ = child.kill();
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    /// Starts a [stopped](Self::stop) server again on the same port with the same store.
    pub fn start_again(&mut self) {
        assert!(self.child.is_none(), "already running");
        let port = self.port;
        self.spawn(Some(port));
    }

    /// Stops gracefully and starts again on the same port with the same store.
    pub fn restart(&mut self) {
        self.stop();
        self.start_again();
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("nats-server.log")).unwrap_or_default()
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Every message of the stream, in order: (subject, `Nats-Msg-Id`, events).
pub async fn stream_messages(
    url: &str,
    stream: &str,
) -> Vec<(String, Option<String>, Vec<registry_notify::Event>)> {
    let client = async_nats::connect(url).await.unwrap();
    let js = async_nats::jetstream::new(client);
    let mut stream = js.get_stream(stream).await.unwrap();
    let info = stream.info().await.unwrap().clone();
    let mut out = Vec::new();
    for seq in info.state.first_sequence..=info.state.last_sequence {
        if info.state.messages == 0 {
            break;
        }
        let Ok(message) = stream.get_raw_message(seq).await else {
            continue;
        };
        let id = message
            .headers
            .get(async_nats::header::NATS_MESSAGE_ID)
            .map(|v| v.as_str().to_owned());
        let envelope: registry_notify::Envelope = serde_json::from_slice(&message.payload).unwrap();
        out.push((message.subject.to_string(), id, envelope.events));
    }
    out
}

/// The durable consumer's counts: (waiting to be delivered, delivered but not acknowledged,
/// redelivered).
pub async fn consumer_state(url: &str, stream: &str, consumer: &str) -> (u64, usize, usize) {
    use async_nats::jetstream::consumer::pull;
    let client = async_nats::connect(url).await.unwrap();
    let js = async_nats::jetstream::new(client);
    let stream = js.get_stream(stream).await.unwrap();
    let mut consumer: async_nats::jetstream::consumer::Consumer<pull::Config> =
        stream.get_consumer(consumer).await.unwrap();
    let info = consumer.info().await.unwrap();
    (info.num_pending, info.num_ack_pending, info.num_redelivered)
}
