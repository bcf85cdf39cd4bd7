//! The index's `indexed` mark and the erasure fence it carries.

use crate::Error;

/// The index's `indexed` key: the offset up to which every stored event is
/// indexed and, while an erasure finishes, its fence: appenders wait until that
/// time (µs since the epoch, the erasing process's clock) has passed or the
/// fence is lifted. Stored as `"<offset>"` or `"<offset> <fence>"`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Mark {
    pub(super) offset: u64,
    pub(super) fence: Option<lift_domain::Micros>,
    /// The key's revision (0 when unset); not stored.
    pub(super) revision: u64,
}

impl Mark {
    pub(super) fn parse(v: &[u8], revision: u64) -> Result<Self, Error> {
        let corrupt =
            || Error::Store(lift_store::Error::Corrupt { offset: 0, reason: "the index mark is malformed".into() });
        let text = std::str::from_utf8(v).map_err(|_| corrupt())?;
        let mut parts = text.split(' ');
        let offset = parts.next().and_then(|o| o.parse().ok()).ok_or_else(corrupt)?;
        let fence = parts.next().map(|f| f.parse().map_err(|_| corrupt())).transpose()?;
        Ok(Mark { offset, fence, revision })
    }

    pub(super) fn encode(&self) -> String {
        match self.fence {
            Some(f) => format!("{} {f}", self.offset),
            None => self.offset.to_string(),
        }
    }

    /// Whether appenders must wait now.
    pub(super) fn fenced(&self) -> bool {
        self.fence.is_some_and(|f| f > lift_domain::time::now())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pins the stored form: a bare offset (as before fences existed) or an
    /// offset and a fence; anything else is refused.
    #[test]
    fn parses_marks() {
        let m = Mark::parse(b"42", 7).expect("bare");
        assert_eq!((m.offset, m.fence, m.revision), (42, None, 7));
        let m = Mark::parse(b"42 1700000000000000", 8).expect("fenced");
        assert_eq!((m.offset, m.fence), (42, Some(1_700_000_000_000_000)));
        assert_eq!(m.encode(), "42 1700000000000000");
        assert!(!m.fenced(), "a fence in the past holds nobody");
        assert_eq!(Mark { fence: None, ..m }.encode(), "42");
        for bad in [&b""[..], b"x", b"42 x", b"-1"] {
            assert!(Mark::parse(bad, 1).is_err(), "{bad:?}");
        }
    }
}
