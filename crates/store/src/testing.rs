//! Test helpers shared by every crate's tests (feature `testing`).
//!
//! [`postgres`] starts a throwaway PostgreSQL through testcontainers. The image is
//! `LIFT_TEST_PG_IMAGE` (`name:tag`), by default the official `postgres:16-alpine`;
//! machines without an image registry build `lift/postgres:15` with
//! `scripts/build-postgres-image.sh`. Without a reachable Docker engine this fails
//! with an error saying so: PostgreSQL tests fail, they are never skipped.

use testcontainers_modules::postgres::Postgres;
use testcontainers_modules::testcontainers::runners::AsyncRunner;
use testcontainers_modules::testcontainers::{ContainerAsync, ImageExt};

use crate::Error;

pub use testcontainers_modules::testcontainers;

/// The image used when `LIFT_TEST_PG_IMAGE` is unset.
pub const DEFAULT_PG_IMAGE: &str = "postgres:16-alpine";

/// Starts PostgreSQL and returns the container (dropping it removes it) and a
/// connection URL. The database is empty: [`crate::connect`] migrates it.
pub async fn postgres() -> Result<(ContainerAsync<Postgres>, String), Error> {
    start(None).await
}

/// Like [`postgres`], but published on a fixed free host port, so the container can
/// be stopped and started again (fault tests) and the URL stays valid.
pub async fn postgres_restartable() -> Result<(ContainerAsync<Postgres>, String), Error> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| Error::Container(format!("finding a free port: {e}")))?
        .port();
    start(Some(port)).await
}

async fn start(host_port: Option<u16>) -> Result<(ContainerAsync<Postgres>, String), Error> {
    // Test-only configuration read at the edge of a test helper, like a `main`.
    let image = std::env::var("LIFT_TEST_PG_IMAGE").unwrap_or_else(|_| DEFAULT_PG_IMAGE.to_owned());
    let (name, tag) = image
        .rsplit_once(':')
        .filter(|(n, t)| !n.is_empty() && !t.is_empty())
        .ok_or_else(|| Error::Container(format!("LIFT_TEST_PG_IMAGE={image:?} is not of the form name:tag")))?;
    let mut request = Postgres::default().with_name(name).with_tag(tag);
    if let Some(p) = host_port {
        request =
            request.with_mapped_port(p, testcontainers_modules::testcontainers::core::IntoContainerPort::tcp(5432));
    }
    let container = request.start().await.map_err(|e| {
        Error::Container(format!(
            "cannot start the PostgreSQL test container from image {image}: {e}. \
             Is a Docker engine reachable (DOCKER_HOST or /var/run/docker.sock)? \
             On a fresh machine run `bash scripts/ensure-docker.sh && bash scripts/build-postgres-image.sh` \
             and set LIFT_TEST_PG_IMAGE=lift/postgres:15"
        ))
    })?;
    let host = container.get_host().await.map_err(|e| Error::Container(format!("test container host: {e}")))?;
    let port =
        container.get_host_port_ipv4(5432).await.map_err(|e| Error::Container(format!("test container port: {e}")))?;
    Ok((container, format!("postgres://postgres:postgres@{host}:{port}/postgres")))
}

/// A SQLite file in the temporary directory, removed with its WAL files when dropped. Its name
/// carries `name`, the process id and the time, so concurrent tests never share one.
#[derive(Debug)]
pub struct TempSqlite(std::path::PathBuf);

impl TempSqlite {
    pub fn new(name: &str) -> Self {
        let nanos =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
        Self(std::env::temp_dir().join(format!("lift-{name}-{}-{nanos}.db", std::process::id())))
    }

    /// The `sqlite:` URL of the file (created on first connect).
    pub fn url(&self) -> String {
        format!("sqlite:{}", self.0.display())
    }
}

impl Drop for TempSqlite {
    fn drop(&mut self) {
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", self.0.display()));
        }
    }
}
