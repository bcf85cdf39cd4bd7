//! TLS (rustls, via tonic's `tls-ring`) configured by PEM files: a server
//! certificate and key, and optionally a CA whose certificates clients must
//! present (mTLS). Clients trust a CA and may present their own certificate.

use std::path::{Path, PathBuf};

use tonic::transport::{Certificate, ClientTlsConfig, Identity, ServerTlsConfig};

use crate::Error;

fn read(path: &Path) -> Result<Vec<u8>, Error> {
    std::fs::read(path).map_err(|source| Error::Io { path: path.to_owned(), source })
}

/// A server's TLS settings, read from files.
#[derive(Debug, Clone)]
pub struct ServerTls {
    cert: Vec<u8>,
    key: Vec<u8>,
    client_ca: Option<Vec<u8>>,
}

impl ServerTls {
    /// `cert`/`key`: the server's PEM chain and key; `client_ca`: when given, every
    /// client must present a certificate signed by it (mTLS).
    pub fn from_files(cert: &Path, key: &Path, client_ca: Option<&Path>) -> Result<Self, Error> {
        Ok(Self::from_pem(read(cert)?, read(key)?, client_ca.map(read).transpose()?))
    }

    pub fn from_pem(cert: Vec<u8>, key: Vec<u8>, client_ca: Option<Vec<u8>>) -> Self {
        Self { cert, key, client_ca }
    }

    pub(crate) fn to_tonic(&self) -> ServerTlsConfig {
        let mut c = ServerTlsConfig::new().identity(Identity::from_pem(&self.cert, &self.key));
        if let Some(ca) = &self.client_ca {
            c = c.client_ca_root(Certificate::from_pem(ca));
        }
        c
    }
}

/// A client's TLS settings.
#[derive(Debug, Clone)]
pub struct ClientTls {
    ca: Vec<u8>,
    identity: Option<(Vec<u8>, Vec<u8>)>,
    domain: Option<String>,
}

impl ClientTls {
    /// `ca`: PEM of the CA that signed the servers; `identity`: this client's
    /// certificate and key (for mTLS); `domain`: the name to verify when it is not
    /// the URL's host.
    pub fn from_files(ca: &Path, identity: Option<(&Path, &Path)>, domain: Option<String>) -> Result<Self, Error> {
        let identity = match identity {
            Some((c, k)) => Some((read(c)?, read(k)?)),
            None => None,
        };
        Ok(Self::from_pem(read(ca)?, identity, domain))
    }

    pub fn from_pem(ca: Vec<u8>, identity: Option<(Vec<u8>, Vec<u8>)>, domain: Option<String>) -> Self {
        Self { ca, identity, domain }
    }

    pub(crate) fn to_tonic(&self) -> ClientTlsConfig {
        let mut c = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(&self.ca));
        if let Some((cert, key)) = &self.identity {
            c = c.identity(Identity::from_pem(cert, key));
        }
        if let Some(d) = &self.domain {
            c = c.domain_name(d.clone());
        }
        c
    }
}

/// Paths as given on the command line, for error messages.
#[derive(Debug, Clone, Default)]
pub struct TlsFiles {
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    pub client_ca: Option<PathBuf>,
}

impl TlsFiles {
    /// The server settings these files make, if any: cert and key come together.
    pub fn server(&self) -> Result<Option<ServerTls>, Error> {
        match (&self.cert, &self.key) {
            (Some(c), Some(k)) => Ok(Some(ServerTls::from_files(c, k, self.client_ca.as_deref())?)),
            (None, None) if self.client_ca.is_none() => Ok(None),
            _ => Err(Error::TlsConfig("--tls-cert and --tls-key go together (and --tls-client-ca needs both)".into())),
        }
    }
}
