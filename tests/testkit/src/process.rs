//! Outside programs and example binaries started as real processes on 127.0.0.1: their
//! output in a log file, killed when dropped, waited for until they listen; and what
//! `/proc` says about them.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use tokio::process::{Child, Command};

use crate::HANG_GUARD;

/// An example binary of the root crate, which `cargo test` (or `cargo build --example`)
/// built beside this test or bench: `target/<profile>/examples/<name>`.
pub fn example_binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(|deps| deps.parent()).unwrap();
    let bin = dir
        .join("examples")
        .join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(
        bin.is_file(),
        "{} not built (cargo test builds the examples; cargo test --test X and cargo bench do \
         not: cargo build [--release] --all-features --examples first)",
        bin.display()
    );
    bin
}

/// A command for `bin` whose stdout and stderr are appended to `log`, with no stdin, killed
/// when its [`Child`] is dropped.
pub fn logged(bin: &Path, log: &Path) -> Command {
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap_or_else(|e| panic!("{}: {e}", log.display()));
    let err = out.try_clone().unwrap();
    let mut command = Command::new(bin);
    command
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .kill_on_drop(true);
    command
}

/// Waits until `addr` accepts connections; panics if the child exits first (or after
/// [`HANG_GUARD`]).
pub async fn wait_listening(child: &mut Child, addr: SocketAddr, what: &str) {
    tokio::time::timeout(HANG_GUARD, async {
        while tokio::net::TcpStream::connect(addr).await.is_err() {
            if let Ok(Some(status)) = child.try_wait() {
                panic!("{what} exited before listening: {status}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{what} did not start listening on {addr}"));
}

/// A running process listening on `addr`, killed when dropped.
pub struct Process {
    /// The process.
    pub child: Child,
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its stdout and stderr.
    pub log: PathBuf,
}

impl Process {
    /// Spawns `command` (made by [`logged`], writing to `log`) and waits until it listens on
    /// `addr`.
    pub async fn start(mut command: Command, addr: SocketAddr, log: &Path, what: &str) -> Self {
        let mut child = command.spawn().unwrap_or_else(|e| panic!("spawn {what}: {e}"));
        wait_listening(&mut child, addr, what).await;
        Self {
            child,
            addr,
            log: log.to_owned(),
        }
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id().expect("process running")
    }

    /// The last 4000 bytes of its log (for failure messages).
    pub fn log_tail(&self) -> String {
        let s = std::fs::read_to_string(&self.log).unwrap_or_default();
        let mut start = s.len().saturating_sub(4000);
        while !s.is_char_boundary(start) {
            start += 1;
        }
        s[start..].to_string()
    }
}

/// Sends SIGTERM to `child` and waits for it to exit (bounded by [`HANG_GUARD`]).
pub async fn terminate(child: &mut Child) -> ExitStatus {
    let pid = child.id().expect("process running").to_string();
    let sent = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("run kill");
    assert!(sent.success(), "kill -TERM {pid}");
    tokio::time::timeout(HANG_GUARD, child.wait())
        .await
        .expect("no exit after SIGTERM")
        .expect("wait for the process")
}

/// A `/proc/<pid>/status` field in KiB (e.g. `VmHWM`, the peak resident set size); `pid`
/// may be `"self"`.
pub fn proc_status_kib(pid: &str, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// User plus system CPU time of process `pid` (`"self"` for this one) so far, from
/// `/proc/<pid>/stat` (zero if it cannot be read).
pub fn cpu_time(pid: &str) -> Duration {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return Duration::ZERO;
    };
    // Fields after the command name (which may contain spaces) start at state, field 3.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok()).unwrap_or(0);
    // utime and stime are fields 14 and 15: indices 11 and 12 after the state; 100 ticks/s.
    let total = ticks(11).saturating_add(ticks(12));
    Duration::from_millis(total.saturating_mul(10))
}
