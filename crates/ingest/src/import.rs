//! File import: NDJSON (one `lift.ingest.v1.Event` per line, proto JSON mapping)
//! and edge lists (`source,target,timestamp`, CollegeMsg's CSV as shipped, or
//! SNAP's `SRC DST UNIXTS`), streamed to a server with `IngestStream`.
//!
//! Every event gets a deterministic id, so importing the same file again adds
//! nothing. A file that does not parse is reported by line and nothing is sent;
//! events the server rejects are reported by line too.

use std::collections::HashSet;
use std::io::{BufRead, BufReader, IsTerminal, Read};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use futures::StreamExt;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use lift_proto::ingest::v1 as pb;
use lift_proto::ingest::v1::ingest_service_client::IngestServiceClient;
use prost_reflect::{DescriptorPool, DynamicMessage, MessageDescriptor};
use sha2::{Digest, Sha256};

/// Why an import stopped: a file that does not read or parse, or the server's answer.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// A line that does not parse.
    #[error("{}:{line}: {reason}", path.display())]
    Parse { path: PathBuf, line: u64, reason: String },
    #[error("reading {}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
    /// The server answered with an error.
    #[error("ingestion server: {}: {}", .0.code(), .0.message())]
    Rpc(#[from] tonic::Status),
}

/// File formats [`import_file`] reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// One event per line in the proto JSON mapping (camelCase or proto field names,
    /// RFC 3339 timestamps, enum names).
    Ndjson,
    /// `source,target,timestamp` rows (comma or whitespace separated, optional
    /// header, `#`/`%` comments); each row is a direct message (a MENTION).
    EdgeList,
}

impl Format {
    /// Guesses from the file name (`.ndjson`, `.jsonl`, `.json` vs anything else),
    /// ignoring a trailing `.gz`.
    pub fn from_path(path: &Path) -> Self {
        let name = path.file_name().map(|n| n.to_string_lossy().to_lowercase()).unwrap_or_default();
        let name = name.strip_suffix(".gz").unwrap_or(&name);
        if [".ndjson", ".jsonl", ".json"].iter().any(|s| name.ends_with(s)) { Format::Ndjson } else { Format::EdgeList }
    }
}

#[derive(Debug, Clone)]
pub struct ImportOptions {
    /// `None`: by file name (see [`Format::from_path`]).
    pub format: Option<Format>,
    /// Edge lists: the network the node ids belong to.
    pub network: String,
    /// Edge lists: the events' source (idempotency scope); default `import-<network>`.
    pub source: Option<String>,
    /// Events per stream message.
    pub batch_size: usize,
    /// Show a progress bar (only ever on a terminal).
    pub progress: bool,
}

impl Default for ImportOptions {
    fn default() -> Self {
        Self { format: None, network: "collegemsg".into(), source: None, batch_size: 5_000, progress: true }
    }
}

/// Events parsed from a file, each with the line it came from.
#[derive(Debug, Clone, Default)]
pub struct Parsed {
    pub events: Vec<pb::Event>,
    /// `lines[i]` is the 1-based line of `events[i]`.
    pub lines: Vec<u64>,
    /// Data rows read (edge lists: messages; NDJSON: events).
    pub rows: u64,
    /// Edge lists: distinct accounts, each announced by one account event.
    pub accounts: u64,
}

/// A rejected event, by the line it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineRejection {
    pub line: u64,
    pub field: String,
    pub description: String,
}

#[derive(Debug, Clone, Default)]
pub struct ImportReport {
    pub rows: u64,
    pub accounts: u64,
    pub events: u64,
    pub accepted: u64,
    pub duplicates: u64,
    pub rejected: u64,
    pub batches: u64,
    /// The server lists a bounded number of rejections; `rejected` is exact.
    pub rejections: Vec<LineRejection>,
    pub elapsed: Duration,
}

impl ImportReport {
    pub fn events_per_sec(&self) -> f64 {
        self.events as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// What an ingestion client may run over: a plain channel, or one that adds
/// credentials (`lift_runtime::client::Channel`).
pub trait IngestTransport:
    tonic::client::GrpcService<
        tonic::body::Body,
        Error: Into<tonic::codegen::StdError>,
        ResponseBody: tonic::codegen::Body<
            Data = tonic::codegen::Bytes,
            Error: Into<tonic::codegen::StdError> + Send,
        > + Send
                          + 'static,
    >
{
}

impl<T> IngestTransport for T where
    T: tonic::client::GrpcService<
            tonic::body::Body,
            Error: Into<tonic::codegen::StdError>,
            ResponseBody: tonic::codegen::Body<
                Data = tonic::codegen::Bytes,
                Error: Into<tonic::codegen::StdError> + Send,
            > + Send
                              + 'static,
        >
{
}

/// Parses `path` and streams it to the server behind `client`.
pub async fn import_file<T: IngestTransport>(
    client: &mut IngestServiceClient<T>,
    path: &Path,
    opts: &ImportOptions,
) -> Result<ImportReport, ImportError> {
    let parsed = parse_file(path, opts)?;
    send(client, parsed, opts).await
}

/// Streams parsed events in batches over one `IngestStream` call.
pub async fn send<T: IngestTransport>(
    client: &mut IngestServiceClient<T>,
    parsed: Parsed,
    opts: &ImportOptions,
) -> Result<ImportReport, ImportError> {
    let started = Instant::now();
    let total = parsed.events.len() as u64;
    let bar = progress_bar(total, opts.progress);
    let Parsed { events, lines, rows, accounts } = parsed;
    let batch_size = opts.batch_size.max(1);
    let mut batches = Vec::with_capacity(events.len().div_ceil(batch_size));
    let mut it = events.into_iter().peekable();
    while it.peek().is_some() {
        batches.push(pb::IngestStreamRequest { events: it.by_ref().take(batch_size).collect() });
    }
    let counter = bar.clone();
    let outbound = futures::stream::iter(batches).inspect(move |b| counter.inc(b.events.len() as u64));
    let resp = client.ingest_stream(outbound).await?.into_inner();
    bar.finish_and_clear();
    let rejections = resp
        .rejections
        .iter()
        .flat_map(|r| {
            let line = lines.get(r.index as usize).copied().unwrap_or(0);
            r.violations.iter().map(move |v| LineRejection {
                line,
                field: v.field.clone(),
                description: v.description.clone(),
            })
        })
        .collect();
    Ok(ImportReport {
        rows,
        accounts,
        events: total,
        accepted: resp.accepted,
        duplicates: resp.duplicates,
        rejected: resp.rejected,
        batches: resp.batches,
        rejections,
        elapsed: started.elapsed(),
    })
}

fn progress_bar(total: u64, wanted: bool) -> ProgressBar {
    if !wanted || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template(
        "{spinner} [{elapsed_precise}] {wide_bar} {human_pos}/{human_len} events  {per_sec}  ETA {eta}",
    ) {
        bar.set_style(style);
    }
    bar
}

/// Reads `path` (gzip recognised by its magic bytes) in the chosen format.
pub fn parse_file(path: &Path, opts: &ImportOptions) -> Result<Parsed, ImportError> {
    let io = |source| ImportError::Io { path: path.to_owned(), source };
    let mut file = std::fs::File::open(path).map_err(io)?;
    let mut magic = [0u8; 2];
    let n = file.read(&mut magic).map_err(io)?;
    let head = std::io::Cursor::new(magic[..n].to_vec());
    let reader: Box<dyn Read> = if magic[..n] == [0x1f, 0x8b] {
        Box::new(flate2::read::MultiGzDecoder::new(head.chain(file)))
    } else {
        Box::new(head.chain(file))
    };
    let reader = BufReader::with_capacity(1 << 16, reader);
    match opts.format.unwrap_or_else(|| Format::from_path(path)) {
        Format::Ndjson => parse_ndjson(reader, path),
        Format::EdgeList => {
            let source = opts.source.clone().unwrap_or_else(|| format!("import-{}", opts.network));
            parse_edge_list(reader, path, &opts.network, &source)
        }
    }
}

/// Parses NDJSON; blank lines are skipped.
pub fn parse_ndjson(reader: impl BufRead, path: &Path) -> Result<Parsed, ImportError> {
    let desc = event_descriptor(path)?;
    let mut out = Parsed::default();
    for (i, line) in reader.lines().enumerate() {
        let n = i as u64 + 1;
        let line = line.map_err(|source| ImportError::Io { path: path.to_owned(), source })?;
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let bad = |reason: String| ImportError::Parse { path: path.to_owned(), line: n, reason };
        let mut de = serde_json::Deserializer::from_str(line);
        let msg = DynamicMessage::deserialize(desc.clone(), &mut de).map_err(|e| bad(e.to_string()))?;
        de.end().map_err(|e| bad(e.to_string()))?;
        let event: pb::Event = msg.transcode_to().map_err(|e| bad(e.to_string()))?;
        out.events.push(event);
        out.lines.push(n);
        out.rows += 1;
    }
    Ok(out)
}

/// The `Event` descriptor, decoded from the embedded descriptor set once per process
/// (decoding it per file, or per line in the fuzzer, dominated small inputs).
fn event_descriptor(path: &Path) -> Result<MessageDescriptor, ImportError> {
    static EVENT: std::sync::OnceLock<Result<MessageDescriptor, String>> = std::sync::OnceLock::new();
    EVENT
        .get_or_init(|| {
            let pool =
                DescriptorPool::decode(lift_proto::FILE_DESCRIPTOR_SET).map_err(|e| format!("descriptor set: {e}"))?;
            pool.get_message_by_name("lift.ingest.v1.Event")
                .ok_or_else(|| "lift.ingest.v1.Event not in the descriptor set".to_owned())
        })
        .clone()
        .map_err(|reason| ImportError::Parse { path: path.to_owned(), line: 0, reason })
}

/// Parses an edge list. Each row becomes a MENTION from source to target; each
/// node's first appearance is preceded by an account event.
pub fn parse_edge_list(reader: impl BufRead, path: &Path, network: &str, source: &str) -> Result<Parsed, ImportError> {
    let mut out = Parsed::default();
    let mut seen: HashSet<String> = HashSet::new();
    let mut first_data_line = true;
    for (i, line) in reader.lines().enumerate() {
        let n = i as u64 + 1;
        let line = line.map_err(|source| ImportError::Io { path: path.to_owned(), source })?;
        let row = line.trim();
        if row.is_empty() || row.starts_with('#') || row.starts_with('%') {
            continue;
        }
        let bad = |reason: String| ImportError::Parse { path: path.to_owned(), line: n, reason };
        let fields: Vec<&str> =
            if row.contains(',') { row.split(',').map(str::trim).collect() } else { row.split_whitespace().collect() };
        if fields.len() < 3 {
            return Err(bad(format!("expected source,target,timestamp; got {} field(s)", fields.len())));
        }
        let (src, dst, ts) = (fields[0], fields[1], fields[2]);
        let occurred = match parse_time(ts) {
            Some(t) => t,
            None if first_data_line => {
                // A header (`Source,Target,Timestamp`) is only allowed on the first row.
                first_data_line = false;
                continue;
            }
            None => {
                return Err(bad(format!("timestamp {ts:?} is neither Unix seconds, RFC 3339 nor M/D/YY H:MM AM/PM")));
            }
        };
        first_data_line = false;
        if src.is_empty() || dst.is_empty() {
            return Err(bad("source and target must not be empty".into()));
        }
        for node in [src, dst] {
            if seen.insert(node.to_owned()) {
                out.events.push(account_event(network, source, node, occurred));
                out.lines.push(n);
                out.accounts += 1;
            }
        }
        let digest = Sha256::digest(row.as_bytes());
        out.events.push(pb::Event {
            event_id: format!("l{n}-{}", hex::encode(&digest[..6])),
            source: source.to_owned(),
            occurred_at: Some(occurred),
            kind: Some(pb::event::Kind::Engagement(pb::Engagement {
                kind: pb::EngagementKind::Mention as i32,
                actor: Some(pb::AccountRef { network: network.to_owned(), id: src.to_owned() }),
                post_id: String::new(),
                target: Some(pb::AccountRef { network: network.to_owned(), id: dst.to_owned() }),
            })),
        });
        out.lines.push(n);
        out.rows += 1;
    }
    Ok(out)
}

fn account_event(network: &str, source: &str, id: &str, at: prost_types::Timestamp) -> pb::Event {
    pb::Event {
        event_id: format!("account-{id}"),
        source: source.to_owned(),
        occurred_at: Some(at),
        kind: Some(pb::event::Kind::Account(pb::AccountUpsert {
            account: Some(pb::AccountRef { network: network.to_owned(), id: id.to_owned() }),
            handle: id.to_owned(),
            ..Default::default()
        })),
    }
}

/// Unix seconds, RFC 3339, or CollegeMsg's `M/D/YY H:MM AM/PM` (read as UTC).
fn parse_time(s: &str) -> Option<prost_types::Timestamp> {
    if let Ok(secs) = s.parse::<i64>() {
        return Some(prost_types::Timestamp { seconds: secs, nanos: 0 });
    }
    if let Ok(ts) = s.parse::<prost_types::Timestamp>() {
        return Some(ts);
    }
    parse_us_time(s).map(|seconds| prost_types::Timestamp { seconds, nanos: 0 })
}

/// `M/D/YY H:MM AM/PM` or `M/D/YYYY H:MM[:SS] [AM/PM]`, as seconds since the epoch.
fn parse_us_time(s: &str) -> Option<i64> {
    let mut parts = s.split_whitespace();
    let date = parts.next()?;
    let time = parts.next()?;
    let meridiem = parts.next();
    if parts.next().is_some() {
        return None;
    }
    let d: Vec<i64> = date.split('/').map(|p| p.parse().ok()).collect::<Option<_>>()?;
    let t: Vec<i64> = time.split(':').map(|p| p.parse().ok()).collect::<Option<_>>()?;
    let ([month, day, year], [hour, minute, rest @ ..]) = (d.as_slice(), t.as_slice()) else { return None };
    let second = match rest {
        [] => 0,
        [s] => *s,
        _ => return None,
    };
    // POSIX %y: 69–99 are 1900s, 00–68 are 2000s.
    let year = match *year {
        y @ 0..=68 if date.rsplit('/').next()?.len() <= 2 => 2000 + y,
        y @ 69..=99 if date.rsplit('/').next()?.len() <= 2 => 1900 + y,
        y => y,
    };
    let hour = match meridiem.map(str::to_ascii_uppercase).as_deref() {
        None if (0..24).contains(hour) => *hour,
        Some("AM") if (1..=12).contains(hour) => hour % 12,
        Some("PM") if (1..=12).contains(hour) => hour % 12 + 12,
        _ => return None,
    };
    if !(1..=12).contains(month) || !(1..=31).contains(day) || !(0..60).contains(minute) || !(0..61).contains(&second) {
        return None;
    }
    Some(days_from_civil(year, *month, *day) * 86_400 + hour * 3600 + minute * 60 + second)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Where the CollegeMsg file lives in a checkout: `data/collegemsg.csv.gz`
/// (fetched by `scripts/fetch-collegemsg.sh`).
pub fn collegemsg_path(repo_root: &Path) -> PathBuf {
    repo_root.join("data").join("collegemsg.csv.gz")
}

#[cfg(test)]
mod tests;
