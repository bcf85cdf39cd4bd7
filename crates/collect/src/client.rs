//! A minimal HTTP/1.1 client: one request per connection (`Connection: close`), the raw
//! status, headers and body back. `lift demo` and the tests speak to the collector with it
//! the way a visitor's browser, a shop's webhook sender or a link-preview bot does, without
//! a client library's own behaviour (redirect following, cookie jars) in the way.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// What went wrong with a request.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("connecting to or talking with {addr}: {source}")]
    Io { addr: SocketAddr, source: std::io::Error },
    #[error("no response from {0} within 10 s")]
    Timeout(SocketAddr),
    #[error("malformed response: {0}")]
    Malformed(String),
}

fn bad(what: impl Into<String>) -> ClientError {
    ClientError::Malformed(what.into())
}

/// A response as received.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl HttpResponse {
    /// The first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// Sends one request and reads the whole response (bounded by 10 s).
pub async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Result<HttpResponse, ClientError> {
    let io = |source| ClientError::Io { addr, source };
    let exchange = async {
        let mut s = TcpStream::connect(addr).await.map_err(io)?;
        let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
        if !body.is_empty() || method == "POST" {
            head.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        for (k, v) in headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");
        s.write_all(head.as_bytes()).await.map_err(io)?;
        s.write_all(body).await.map_err(io)?;
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).await.map_err(io)?;
        parse(&raw)
    };
    tokio::time::timeout(Duration::from_secs(10), exchange).await.map_err(|_| ClientError::Timeout(addr))?
}

fn parse(raw: &[u8]) -> Result<HttpResponse, ClientError> {
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").ok_or_else(|| bad("no end of headers"))?;
    let head = std::str::from_utf8(&raw[..split]).map_err(|_| bad("headers are not UTF-8"))?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().ok_or_else(|| bad("no status line"))?;
    let status: u16 = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad(format!("status line {status_line:?}")))?;
    let headers: Vec<(String, String)> =
        lines.filter_map(|l| l.split_once(':')).map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned())).collect();
    let mut body = raw[split + 4..].to_vec();
    let chunked =
        headers.iter().any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.eq_ignore_ascii_case("chunked"));
    if chunked {
        body = dechunk(&body)?;
    }
    Ok(HttpResponse { status, headers, body: String::from_utf8_lossy(&body).into_owned() })
}

fn dechunk(mut b: &[u8]) -> Result<Vec<u8>, ClientError> {
    let mut out = Vec::new();
    loop {
        let line_end = b.windows(2).position(|w| w == b"\r\n").ok_or_else(|| bad("chunk size line"))?;
        let line = std::str::from_utf8(&b[..line_end]).map_err(|_| bad("chunk size line"))?;
        let size_str = line.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_str, 16).map_err(|_| bad(format!("chunk size {size_str:?}")))?;
        b = &b[line_end + 2..];
        if size == 0 {
            return Ok(out);
        }
        if b.len() < size + 2 {
            return Err(bad("truncated chunk"));
        }
        out.extend_from_slice(&b[..size]);
        b = &b[size + 2..];
    }
}
