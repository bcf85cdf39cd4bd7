//! Who is asking: a coarse user-agent class, and whether a request is a person's click at all.
//!
//! Bots, link-preview fetchers, prefetches, `HEAD` requests and bursts from one visitor are
//! still recorded (the ledger keeps what happened) but carry a `not_counted` reason, and
//! reports and scores skip them.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, Method, header};

/// Substrings (lower case) of user agents that are not people: crawlers, link-preview
/// fetchers of messengers and social sites, HTTP libraries, headless automation, monitors.
const BOT_MARKERS: &[&str] = &[
    "bot",
    "crawler",
    "spider",
    "slurp",
    "facebookexternalhit",
    "facebookcatalog",
    "embedly",
    "preview",
    "whatsapp/",
    "skypeuripreview",
    "iframely",
    "mastodon/",
    "cardyb",
    "vkshare",
    "pinterest",
    "nuzzel",
    "outbrain",
    "curl/",
    "wget/",
    "python-requests",
    "python-urllib",
    "aiohttp",
    "go-http-client",
    "okhttp",
    "java/",
    "libwww",
    "httpclient",
    "axios/",
    "node-fetch",
    "undici",
    "headlesschrome",
    "phantomjs",
    "lighthouse",
    "pingdom",
    "uptime",
    "monitor",
    "scanner",
    "wrk",
];

/// A request's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    /// "desktop", "mobile", "tablet", "bot" or "other".
    pub class: &'static str,
    /// Why it is not counted as a person's click, if it is not.
    pub not_counted: Option<&'static str>,
}

/// Classifies a request by method, user agent and prefetch hints (burst detection is
/// separate: [`BurstGuard`]).
pub fn classify(method: &Method, headers: &HeaderMap) -> Verdict {
    let ua = headers.get(header::USER_AGENT).and_then(|v| v.to_str().ok()).unwrap_or("").to_ascii_lowercase();
    let class = class_of(&ua);
    let not_counted = if ua.trim().is_empty() {
        Some("no user agent")
    } else if class == "bot" {
        Some("known bot or link-preview user agent")
    } else if method == Method::HEAD {
        Some("HEAD request")
    } else if is_prefetch(headers) {
        Some("prefetch")
    } else {
        None
    };
    Verdict { class, not_counted }
}

fn class_of(ua: &str) -> &'static str {
    if ua.trim().is_empty() || BOT_MARKERS.iter().any(|m| ua.contains(m)) {
        "bot"
    } else if ua.contains("ipad") || ua.contains("tablet") || (ua.contains("android") && !ua.contains("mobile")) {
        "tablet"
    } else if ua.contains("mobi") || ua.contains("iphone") || ua.contains("android") {
        "mobile"
    } else if ["windows", "macintosh", "x11", "cros", "linux"].iter().any(|m| ua.contains(m)) {
        "desktop"
    } else {
        "other"
    }
}

/// Browsers announce speculative loads: `Sec-Purpose: prefetch` (Chromium), `Purpose: prefetch`,
/// `X-Moz: prefetch` (Firefox), `X-Purpose: preview` (Safari's top sites).
fn is_prefetch(headers: &HeaderMap) -> bool {
    ["sec-purpose", "purpose", "x-moz", "x-purpose"].iter().any(|h| {
        headers.get(*h).and_then(|v| v.to_str().ok()).is_some_and(|v| {
            let v = v.to_ascii_lowercase();
            v.contains("prefetch") || v.contains("preview") || v.contains("prerender")
        })
    })
}

/// Counts clicks per key (a visitor id, or in memory only an address) in fixed windows:
/// beyond `limit` in one `window`, further clicks are a burst.
#[derive(Debug)]
pub struct BurstGuard {
    limit: u32,
    window: Duration,
    seen: Mutex<HashMap<String, (Instant, u32)>>,
}

/// Keys kept at most; past it, expired windows go, then everything (a reset at worst lets
/// one more window's burst through).
const MAX_KEYS: usize = 200_000;

impl BurstGuard {
    pub fn new(limit: u32, window: Duration) -> Self {
        Self { limit, window, seen: Mutex::new(HashMap::new()) }
    }

    /// Records one click by `key` at `now`; true when it is beyond the limit.
    pub fn is_burst(&self, key: &str, now: Instant) -> bool {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        if seen.len() >= MAX_KEYS && !seen.contains_key(key) {
            let window = self.window;
            seen.retain(|_, (start, _)| now.duration_since(*start) < window);
            if seen.len() >= MAX_KEYS {
                seen.clear();
            }
        }
        let entry = seen.entry(key.to_owned()).or_insert((now, 0));
        if now.duration_since(entry.0) >= self.window {
            *entry = (now, 0);
        }
        entry.1 = entry.1.saturating_add(1);
        entry.1 > self.limit
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(ua: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Ok(v) = HeaderValue::from_str(ua) {
            h.insert(header::USER_AGENT, v);
        }
        h
    }

    const FIREFOX: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0";
    const IPHONE: &str =
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148 Safari/604.1";

    /// Pins the classes: browsers by form factor, bots and preview fetchers by name.
    #[test]
    fn classes_and_bots() {
        assert_eq!(classify(&Method::GET, &headers(FIREFOX)), Verdict { class: "desktop", not_counted: None });
        assert_eq!(classify(&Method::GET, &headers(IPHONE)).class, "mobile");
        for ua in [
            "Twitterbot/1.0",
            "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
            "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)",
            "WhatsApp/2.23.20.0",
            "curl/8.5.0",
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 HeadlessChrome/120.0 Safari/537.36",
            "",
        ] {
            let v = classify(&Method::GET, &headers(ua));
            assert_eq!(v.class, "bot", "{ua}");
            assert!(v.not_counted.is_some(), "{ua}");
        }
    }

    /// Pins that HEAD requests and prefetches from real browsers are recorded but not counted.
    #[test]
    fn head_and_prefetch_not_counted() {
        assert_eq!(classify(&Method::HEAD, &headers(FIREFOX)).not_counted, Some("HEAD request"));
        let mut h = headers(FIREFOX);
        h.insert("sec-purpose", HeaderValue::from_static("prefetch;prerender"));
        assert_eq!(classify(&Method::GET, &h).not_counted, Some("prefetch"));
    }

    /// Pins the burst rule: `limit` clicks per window pass, the next are bursts, a new window resets.
    #[test]
    fn bursts() {
        let g = BurstGuard::new(3, Duration::from_secs(10));
        let t = Instant::now();
        let got: Vec<bool> = (0..5).map(|_| g.is_burst("v1", t)).collect();
        assert_eq!(got, [false, false, false, true, true]);
        assert!(!g.is_burst("v2", t));
        assert!(!g.is_burst("v1", t + Duration::from_secs(11)));
    }
}
