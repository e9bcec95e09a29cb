//! Localized text and locale negotiation.
//!
//! Product content is stored per locale (`{"ko": "...", "en": "..."}`) and resolved by a
//! fallback chain: the requested locales in order, each also by its bare language
//! (`ko-KR` -> `ko`), then the store's default chain, then any text at all so that a
//! product never renders without a title.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::{CoreError, FieldError};

/// Text in several locales, keyed by BCP 47 tag (`ko`, `en`, `id`, `zh-Hans`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct LocalizedText(pub BTreeMap<String, String>);

impl LocalizedText {
    /// One locale's text.
    pub fn single(locale: &str, text: &str) -> Self {
        let mut m = BTreeMap::new();
        m.insert(locale.to_string(), text.to_string());
        LocalizedText(m)
    }

    /// Resolves by a fallback chain; returns the text and the locale it came from.
    pub fn resolve<'a>(&'a self, chain: &LocaleChain) -> Option<(&'a str, &'a str)> {
        for tag in &chain.0 {
            if let Some((k, v)) = self.0.get_key_value(tag.as_str()) {
                return Some((k.as_str(), v.as_str()));
            }
        }
        self.0.iter().next().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Resolved text or an empty string.
    pub fn text(&self, chain: &LocaleChain) -> String {
        self.resolve(chain)
            .map(|(_, t)| t.to_string())
            .unwrap_or_default()
    }

    /// Checks tags and lengths; `field` names the field in errors.
    pub fn validate(
        &self,
        field: &str,
        max_len: usize,
        required: bool,
        errors: &mut Vec<FieldError>,
    ) {
        if required && self.0.values().all(|v| v.trim().is_empty()) {
            errors.push(FieldError::new(
                field,
                "required",
                "at least one locale must have text",
            ));
        }
        for (tag, text) in &self.0 {
            if !is_valid_tag(tag) {
                errors.push(FieldError::new(
                    format!("{field}.{tag}"),
                    "invalid_locale",
                    "not a BCP 47 locale tag",
                ));
            }
            if text.chars().count() > max_len {
                errors.push(FieldError::new(
                    format!("{field}.{tag}"),
                    "too_long",
                    format!("at most {max_len} characters"),
                ));
            }
        }
    }
}

/// A BCP 47 tag in the simple form we accept: `ll`, `lll`, `ll-RR`, `ll-Script`.
pub fn is_valid_tag(tag: &str) -> bool {
    let mut parts = tag.split('-');
    let lang = parts.next().unwrap_or("");
    if !(2..=3).contains(&lang.len()) || !lang.bytes().all(|b| b.is_ascii_lowercase()) {
        return false;
    }
    parts.all(|p| (2..=8).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_alphanumeric()))
}

/// An ordered list of locale tags to try.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocaleChain(pub Vec<String>);

impl LocaleChain {
    /// Builds a chain from the caller's preferences (best first), extended by the store's
    /// defaults. Invalid tags are dropped; duplicates keep their first position.
    pub fn negotiate<'a>(
        preferred: impl IntoIterator<Item = &'a str>,
        defaults: &[String],
    ) -> Self {
        let mut out: Vec<String> = Vec::new();
        let mut push = |t: String| {
            if is_valid_tag(&t) && !out.contains(&t) {
                out.push(t);
            }
        };
        for tag in preferred {
            let tag = normalize_tag(tag);
            if let Some((lang, _)) = tag.split_once('-') {
                let lang = lang.to_string();
                push(tag);
                push(lang);
            } else {
                push(tag);
            }
        }
        for d in defaults {
            push(d.clone());
        }
        LocaleChain(out)
    }

    /// The first locale of the chain (the one responses are labelled with).
    pub fn primary(&self) -> &str {
        self.0.first().map(String::as_str).unwrap_or("en")
    }
}

/// `ko_kr` / `KO-kr` -> `ko-KR`.
pub fn normalize_tag(tag: &str) -> String {
    let tag = tag.trim().replace('_', "-");
    let mut parts = tag.split('-');
    let mut out = parts.next().unwrap_or("").to_ascii_lowercase();
    for p in parts {
        out.push('-');
        if p.len() == 2 {
            out.push_str(&p.to_ascii_uppercase());
        } else if p.len() == 4 {
            let mut c = p.chars();
            if let Some(f) = c.next() {
                out.push(f.to_ascii_uppercase());
                out.push_str(&c.as_str().to_ascii_lowercase());
            }
        } else {
            out.push_str(p);
        }
    }
    out
}

/// Parses an `Accept-Language` header into tags ordered by q-value (stable for ties).
pub fn parse_accept_language(header: &str) -> Vec<String> {
    let mut items: Vec<(u32, usize, String)> = header
        .split(',')
        .take(16)
        .enumerate()
        .filter_map(|(i, part)| {
            let mut it = part.split(';');
            let tag = it.next()?.trim();
            if tag.is_empty() || tag == "*" {
                return None;
            }
            let mut q = 1000u32;
            for param in it {
                if let Some(v) = param.trim().strip_prefix("q=") {
                    q = v
                        .trim()
                        .parse::<f32>()
                        .map(|f| (f.clamp(0.0, 1.0) * 1000.0) as u32)
                        .unwrap_or(0);
                }
            }
            (q > 0).then(|| (q, i, normalize_tag(tag)))
        })
        .collect();
    items.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    items.into_iter().map(|(_, _, t)| t).collect()
}

/// Validates a locale given as a setting on a cart.
pub fn validate_locale(tag: &str) -> Result<String, CoreError> {
    let t = normalize_tag(tag);
    if is_valid_tag(&t) {
        Ok(t)
    } else {
        Err(CoreError::invalid_field(
            "locale",
            "invalid_locale",
            "not a BCP 47 locale tag",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn falls_back_by_language_then_defaults_then_anything() {
        let mut m = BTreeMap::new();
        m.insert("ko".to_string(), "홍삼".to_string());
        m.insert("en".to_string(), "Red ginseng".to_string());
        let t = LocalizedText(m);
        let defaults = vec!["en".to_string()];
        assert_eq!(
            t.text(&LocaleChain::negotiate(["ko-KR"], &defaults)),
            "홍삼"
        );
        assert_eq!(
            t.text(&LocaleChain::negotiate(["id"], &defaults)),
            "Red ginseng"
        );
        let only_id = LocalizedText::single("id", "Ginseng merah");
        assert_eq!(
            only_id.text(&LocaleChain::negotiate(["ko"], &defaults)),
            "Ginseng merah"
        );
    }

    #[test]
    fn accept_language_orders_by_q() {
        assert_eq!(
            parse_accept_language("en;q=0.5, ko-KR, id;q=0.8"),
            vec!["ko-KR", "id", "en"]
        );
        assert_eq!(
            parse_accept_language("*;q=0.1, xx;q=0"),
            Vec::<String>::new()
        );
    }

    #[test]
    fn tags_are_checked() {
        assert!(is_valid_tag("ko"));
        assert!(is_valid_tag("zh-Hans"));
        assert!(!is_valid_tag("k"));
        assert!(!is_valid_tag("<script>"));
        assert_eq!(normalize_tag("ko_kr"), "ko-KR");
    }
}
