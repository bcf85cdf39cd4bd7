//! Shop order webhooks: signature checks and turning an order into a conversion.
//!
//! Two shapes, both signed with the brand's webhook secret (HMAC-SHA256 over the raw body,
//! compared in constant time):
//! - generic: `X-Lift-Signature: sha256=<hex>` over a JSON [`GenericOrder`];
//! - Shopify-compatible `orders/create`: `X-Shopify-Hmac-Sha256: <base64>` over Shopify's
//!   order JSON; the discount codes, `total_price`/`currency`, and a `lift_vid` either in the
//!   order's `note_attributes` or in the query of its `landing_site` are read.
//!
//! An order's event id is derived from the brand and the shop's order id, so a replayed
//! webhook is a duplicate on the ledger.

use base64::Engine;
use hmac::{Hmac, Mac};
use lift_proto::ingest::v1 as pb;
use serde::Deserialize;
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// True when `signature` is HMAC-SHA256(`secret`, `body`), compared in constant time.
pub fn verify(secret: &[u8], body: &[u8], signature: &[u8]) -> bool {
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else { return false };
    mac.update(body);
    let expected: [u8; 32] = mac.finalize().into_bytes().into();
    expected[..].ct_eq(signature).into()
}

/// HMAC-SHA256(`secret`, `body`): what a shop (or a test) signs with.
pub fn sign(secret: &[u8], body: &[u8]) -> Vec<u8> {
    match Hmac::<Sha256>::new_from_slice(secret) {
        Ok(mut mac) => {
            mac.update(body);
            let out: [u8; 32] = mac.finalize().into_bytes().into();
            out.to_vec()
        }
        // HMAC takes keys of any length; this arm is never taken.
        Err(_) => Vec::new(),
    }
}

/// The generic header's value: `sha256=<hex>`.
pub fn generic_signature(header: &str) -> Option<Vec<u8>> {
    hex::decode(header.trim().strip_prefix("sha256=")?).ok()
}

/// Shopify's header value: base64.
pub fn shopify_signature(header: &str) -> Option<Vec<u8>> {
    base64::engine::general_purpose::STANDARD.decode(header.trim()).ok()
}

/// An order in the generic webhook.
#[derive(Debug, Clone, Deserialize)]
pub struct GenericOrder {
    pub order_id: String,
    #[serde(default)]
    pub value_minor: i64,
    #[serde(default)]
    pub currency: String,
    /// The discount code used, if any.
    #[serde(default)]
    pub code: Option<String>,
    /// The visitor id the landing page saw (`lift_vid`), if the shop kept it.
    #[serde(default)]
    pub visitor_id: Option<String>,
    /// The customer's own social account, if known.
    #[serde(default)]
    pub customer: Option<CustomerRef>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct CustomerRef {
    pub network: String,
    pub id: String,
}

/// The parts of a Shopify order this receiver reads.
#[derive(Debug, Clone, Deserialize)]
pub struct ShopifyOrder {
    pub id: serde_json::Value,
    #[serde(default)]
    pub total_price: Option<String>,
    #[serde(default)]
    pub currency: Option<String>,
    #[serde(default)]
    pub discount_codes: Vec<ShopifyDiscount>,
    #[serde(default)]
    pub note_attributes: Vec<ShopifyAttribute>,
    #[serde(default)]
    pub landing_site: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ShopifyDiscount {
    pub code: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ShopifyAttribute {
    pub name: String,
    #[serde(default)]
    pub value: serde_json::Value,
}

/// An order reduced to what a conversion needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Order {
    pub order_id: String,
    pub value_minor: i64,
    pub currency: String,
    pub code: Option<String>,
    pub visitor_id: Option<String>,
    pub customer: Option<(String, String)>,
}

impl From<GenericOrder> for Order {
    fn from(o: GenericOrder) -> Self {
        Self {
            order_id: o.order_id,
            value_minor: o.value_minor,
            currency: o.currency.to_ascii_uppercase(),
            code: o.code.filter(|c| !c.is_empty()),
            visitor_id: o.visitor_id.filter(|v| !v.is_empty()),
            customer: o.customer.map(|c| (c.network, c.id)),
        }
    }
}

impl ShopifyOrder {
    /// The order; `None` when it has no usable id.
    pub fn into_order(self) -> Option<Order> {
        let order_id = match &self.id {
            serde_json::Value::Number(n) => n.to_string(),
            serde_json::Value::String(s) if !s.is_empty() => s.clone(),
            _ => return None,
        };
        let currency = self.currency.unwrap_or_default().to_ascii_uppercase();
        let value_minor = self.total_price.as_deref().and_then(|p| to_minor(p, &currency)).unwrap_or(0);
        let from_notes = self
            .note_attributes
            .iter()
            .find(|a| a.name == "lift_vid")
            .and_then(|a| a.value.as_str().map(str::to_owned));
        let from_landing = self.landing_site.as_deref().and_then(|s| {
            // Shopify records the landing path with its query, e.g. "/spring?lift_vid=…".
            let u = url::Url::parse("https://shop.invalid/").ok()?.join(s).ok()?;
            u.query_pairs().find(|(k, _)| k == "lift_vid").map(|(_, v)| v.into_owned())
        });
        Some(Order {
            order_id,
            value_minor,
            currency,
            code: self.discount_codes.into_iter().map(|d| d.code).find(|c| !c.is_empty()),
            visitor_id: from_notes.or(from_landing).filter(|v| !v.is_empty()),
            customer: None,
        })
    }
}

impl Order {
    /// The conversion event; `None` when the order carries neither a code nor a visitor id
    /// (nothing could attribute it).
    pub fn to_event(&self, brand_id: &str, source: &str, at: lift_proto::Timestamp) -> Option<pb::Event> {
        if self.code.is_none() && self.visitor_id.is_none() {
            return None;
        }
        Some(pb::Event {
            event_id: self.event_id(brand_id),
            source: source.to_owned(),
            occurred_at: Some(at),
            kind: Some(pb::event::Kind::Conversion(pb::Conversion {
                visitor_id: self.visitor_id.clone().unwrap_or_default(),
                code: self.code.clone().unwrap_or_default(),
                order_id: format!("{brand_id}:{}", self.order_id),
                value_minor: self.value_minor,
                currency: self.currency.clone(),
                customer: self.customer.as_ref().map(|(n, i)| pb::AccountRef { network: n.clone(), id: i.clone() }),
            })),
        })
    }

    /// Stable per brand and order: replays are duplicates. Hashed, so any shop order id
    /// (length, characters) makes a valid event id.
    pub fn event_id(&self, brand_id: &str) -> String {
        use sha2::Digest;
        let d = Sha256::new().chain_update(brand_id).chain_update([0u8]).chain_update(&self.order_id).finalize();
        format!("ord-{}", hex::encode(&d[..16]))
    }
}

/// Decimal amount in a currency → minor units (ISO 4217 exponents: 0 for JPY, KRW and a few
/// others, 3 for the dinars, else 2). `None` for anything that is not a plain amount.
pub fn to_minor(amount: &str, currency: &str) -> Option<i64> {
    let exp: u32 = match currency {
        "JPY" | "KRW" | "VND" | "CLP" | "ISK" | "UGX" | "XAF" | "XOF" | "PYG" | "RWF" => 0,
        "BHD" | "KWD" | "OMR" | "JOD" | "TND" | "IQD" | "LYD" => 3,
        _ => 2,
    };
    let (int, frac) = amount.trim().split_once('.').unwrap_or((amount.trim(), ""));
    if int.is_empty() || !int.bytes().all(|b| b.is_ascii_digit()) || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if frac.len() > exp as usize && frac[exp as usize..].bytes().any(|b| b != b'0') {
        return None;
    }
    let mut frac_digits: String = frac.chars().take(exp as usize).collect();
    while frac_digits.len() < exp as usize {
        frac_digits.push('0');
    }
    let whole: i64 = int.parse().ok()?;
    let part: i64 = if frac_digits.is_empty() { 0 } else { frac_digits.parse().ok()? };
    whole.checked_mul(10_i64.pow(exp))?.checked_add(part)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pins the signature check: the right secret verifies, a changed body or secret does not.
    #[test]
    fn hmac_verification() {
        let sig = sign(b"s3cret", b"{\"order_id\":\"1\"}");
        assert!(verify(b"s3cret", b"{\"order_id\":\"1\"}", &sig));
        assert!(!verify(b"s3cret", b"{\"order_id\":\"2\"}", &sig));
        assert!(!verify(b"other", b"{\"order_id\":\"1\"}", &sig));
        assert!(!verify(b"s3cret", b"{\"order_id\":\"1\"}", &sig[..31]));
        let header = format!("sha256={}", hex::encode(&sig));
        assert_eq!(generic_signature(&header), Some(sig.clone()));
        let b64 = base64::engine::general_purpose::STANDARD.encode(&sig);
        assert_eq!(shopify_signature(&b64), Some(sig));
    }

    /// Pins reading a Shopify order: code, value in minor units, visitor from the landing site.
    #[test]
    fn shopify_order() {
        let o: ShopifyOrder = serde_json::from_str(
            r#"{"id": 820982911946154508, "total_price": "199.90", "currency": "eur",
                "discount_codes": [{"code": "ANNA10", "amount": "10.00", "type": "percentage"}],
                "landing_site": "/spring?utm_source=lift&lift_vid=abcdef0123456789"}"#,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let o = o.into_order().unwrap_or_else(|| panic!("order"));
        assert_eq!(o.order_id, "820982911946154508");
        assert_eq!((o.value_minor, o.currency.as_str()), (19_990, "EUR"));
        assert_eq!(o.code.as_deref(), Some("ANNA10"));
        assert_eq!(o.visitor_id.as_deref(), Some("abcdef0123456789"));
        let id = o.event_id("brd_1");
        assert!(id.starts_with("ord-") && id.len() == 4 + 32, "{id}");
        assert_ne!(id, o.event_id("brd_2"));
    }

    /// Pins amounts: exponents per currency, and refusal of what is not a plain amount.
    #[test]
    fn minor_units() {
        assert_eq!(to_minor("12.5", "USD"), Some(1_250));
        assert_eq!(to_minor("1000", "JPY"), Some(1_000));
        assert_eq!(to_minor("1.234", "KWD"), Some(1_234));
        assert_eq!(to_minor("1.239", "USD"), None);
        assert_eq!(to_minor("-1", "USD"), None);
        assert_eq!(to_minor("1e3", "USD"), None);
    }
}
