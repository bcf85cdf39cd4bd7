//! Page tokens: opaque to clients, checked on the way back in.

use lift_domain::AccountId;

use crate::Error;

/// `MatchCampaign`'s keyset token: the last row's ranking key and account, so
/// pages stay consistent when accounts enter or leave between calls.
pub(super) fn encode_match_token(key: (f64, f64), a: &AccountId) -> String {
    format!(
        "{:016x}{:016x}{}.{}",
        key.0.to_bits(),
        key.1.to_bits(),
        hex::encode(a.network.as_bytes()),
        hex::encode(a.id.as_bytes())
    )
}

pub(super) fn decode_match_token(t: &str) -> Result<((f64, f64), AccountId), Error> {
    let bad = || Error::invalid("page_token", "is not a token this service issued");
    let (k0, k1, rest) = (t.get(..16).ok_or_else(bad)?, t.get(16..32).ok_or_else(bad)?, t.get(32..).ok_or_else(bad)?);
    let k0 = u64::from_str_radix(k0, 16).map_err(|_| bad())?;
    let k1 = u64::from_str_radix(k1, 16).map_err(|_| bad())?;
    let (n, i) = rest.split_once('.').ok_or_else(bad)?;
    let s = |h: &str| hex::decode(h).ok().and_then(|b| String::from_utf8(b).ok()).ok_or_else(bad);
    Ok(((f64::from_bits(k0), f64::from_bits(k1)), AccountId::new(s(n)?, s(i)?)))
}

/// `ListOffers`' token: the last offer's account.
pub(super) fn encode_offer_token(a: &AccountId) -> String {
    format!("{}.{}", hex::encode(a.network.as_bytes()), hex::encode(a.id.as_bytes()))
}

pub(super) fn decode_offer_token(t: &str) -> Result<AccountId, Error> {
    let bad = || Error::invalid("page_token", "is not a token this service issued");
    let (n, i) = t.split_once('.').ok_or_else(bad)?;
    let s = |h: &str| hex::decode(h).ok().and_then(|b| String::from_utf8(b).ok()).ok_or_else(bad);
    Ok(AccountId::new(s(n)?, s(i)?))
}

/// `ListCampaigns`' token: the last campaign's creation time and id.
pub(super) fn encode_list_token(created_at: i64, id: &str) -> String {
    hex::encode(format!("{created_at}.{id}"))
}

pub(super) fn decode_list_token(t: &str) -> Result<(i64, String), Error> {
    let bad = || Error::invalid("page_token", "is not a token this service issued");
    let s = hex::decode(t).ok().and_then(|b| String::from_utf8(b).ok()).ok_or_else(bad)?;
    let (at, id) = s.split_once('.').ok_or_else(bad)?;
    Ok((at.parse().map_err(|_| bad())?, id.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pins that page tokens round-trip and that forged ones are refused, not panicked on.
    #[test]
    fn tokens_round_trip_and_refuse_garbage() {
        let a = AccountId::new("x:y", "a.b");
        let t = encode_match_token((12.5, -0.0), &a);
        assert_eq!(decode_match_token(&t).ok(), Some(((12.5, -0.0), a)));
        for bad in ["", "zz", "ñ", &"f".repeat(40), "0000000000000000000000000000000g78.79"] {
            assert!(decode_match_token(bad).is_err(), "{bad}");
            assert!(decode_list_token(bad).is_err(), "{bad}");
        }
        assert_eq!(decode_list_token(&hex::encode("17.cmp_1")).ok(), Some((17, "cmp_1".to_owned())));
        assert_eq!(decode_list_token(&encode_list_token(-3, "cmp_2")).ok(), Some((-3, "cmp_2".to_owned())));
    }
}
