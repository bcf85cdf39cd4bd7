//! The import parsers (`lift import`): NDJSON in the proto JSON mapping and edge
//! lists, on arbitrary file contents. Every input parses or is reported by line —
//! never a panic; a parsed edge list yields events for the accounts it names.
#![no_main]

use std::io::Cursor;
use std::path::Path;

use libfuzzer_sys::fuzz_target;
use lift_ingest::import::{parse_edge_list, parse_ndjson};

fuzz_target!(|data: &[u8]| {
    let Some((&which, body)) = data.split_first() else { return };
    let path = Path::new("fuzz-input");
    if which % 2 == 0 {
        let _ = parse_ndjson(Cursor::new(body), path);
    } else if let Ok(p) = parse_edge_list(Cursor::new(body), path, "fuzz", "import-fuzz") {
        assert!(p.events.len() as u64 >= p.accounts, "fewer events than accounts");
    }
});
