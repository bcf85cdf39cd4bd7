//! Where a tracking link redirects: the landing URL with UTM parameters and the beacon's
//! `lift_vid` / `lift_link`, prepared once per link.

/// A link's redirect target split around the visitor id: the same for every click of
/// the link, so the landing URL is parsed and its parameters encoded once per link
/// rather than once per click (it was a quarter of the redirect handler's time).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Location {
    head: String,
    /// After the visitor id; `None` when the landing is not a URL and is used as it is.
    tail: Option<String>,
}

impl Location {
    /// Stands for the visitor id while the URL is built: a token, so the URL encoder
    /// keeps it as it is (as it keeps every visitor id, also a token).
    const MARK: &'static str = "LIFTVISITORIDMARK7f3c";

    pub(crate) fn new(landing: &str, campaign_id: &str, code: &str) -> Self {
        let built = landing_with_params(landing, campaign_id, code, Self::MARK);
        // `lift_vid` is appended after every parameter the landing already had.
        let ours = format!("lift_vid={}", Self::MARK);
        match built.rfind(&ours) {
            Some(at) => {
                let at = at + "lift_vid=".len();
                Self { head: built[..at].to_owned(), tail: Some(built[at + Self::MARK.len()..].to_owned()) }
            }
            None => Self { head: built, tail: None },
        }
    }

    /// The target for `visitor` (a token: letters, digits, `-`, `_`).
    pub(crate) fn with(&self, visitor: &str) -> String {
        let Some(tail) = &self.tail else { return self.head.clone() };
        let mut s = String::with_capacity(self.head.len() + visitor.len() + tail.len());
        s.push_str(&self.head);
        s.push_str(visitor);
        s.push_str(tail);
        s
    }
}

/// The landing URL with UTM parameters (kept when the campaign set its own) and the
/// beacon's `lift_vid` / `lift_link`.
fn landing_with_params(landing: &str, campaign_id: &str, code: &str, visitor: &str) -> String {
    let Ok(mut url) = url::Url::parse(landing) else { return landing.to_owned() };
    let present: Vec<String> = url.query_pairs().map(|(k, _)| k.into_owned()).collect();
    let campaign = if campaign_id.is_empty() { "lift" } else { campaign_id };
    {
        let mut q = url.query_pairs_mut();
        for (k, v) in
            [("utm_source", "lift"), ("utm_medium", "influencer"), ("utm_campaign", campaign), ("utm_content", code)]
        {
            if !present.iter().any(|p| p == k) {
                q.append_pair(k, v);
            }
        }
        q.append_pair("lift_vid", visitor);
        q.append_pair("lift_link", code);
    }
    url.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ordered_id;

    /// Pins that a link's prepared location gives, for any visitor, exactly the URL built
    /// from scratch: with and without a query, fragment, campaign-set UTM parameters, an
    /// existing `lift_vid`, and a landing that is not a URL.
    #[test]
    fn prepared_location_equals_building_it_each_time() {
        let landings = [
            "https://shop.example/landing",
            "https://shop.example/spring?color=red&utm_source=newsletter#buy",
            "https://shop.example/?",
            "https://shop.example/p?lift_vid=old&x=1",
            "http://127.0.0.1:8080/a/b/",
            "not a url",
        ];
        for landing in landings {
            for campaign in ["cmp_1", ""] {
                let prepared = Location::new(landing, campaign, "3f9a0c1b2d4e");
                for visitor in ["0123456789abcdef01234567", "v-7731_X", &ordered_id(12)] {
                    assert_eq!(
                        prepared.with(visitor),
                        landing_with_params(landing, campaign, "3f9a0c1b2d4e", visitor),
                        "{landing} / {campaign} / {visitor}"
                    );
                }
            }
        }
    }
}
