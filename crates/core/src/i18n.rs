//! Fluent message catalogs (`locales/{en,ko,id}/*.ftl`), parsed once, rendered by a
//! locale with fallback to its bare language and then English.

use fluent_bundle::concurrent::FluentBundle;
use fluent_bundle::{FluentArgs, FluentResource};

use crate::error::{CoreError, CoreResult};

/// Parsed bundles of one catalog, one per locale.
pub struct Catalog {
    name: &'static str,
    bundles: Vec<(String, FluentBundle<FluentResource>)>,
}

impl std::fmt::Debug for Catalog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Catalog")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl Catalog {
    /// Parses `(locale, source)` pairs; English must be among them (the last fallback).
    pub fn load(name: &'static str, sources: &[(&str, &str)]) -> CoreResult<Self> {
        let mut bundles = Vec::new();
        for (locale, source) in sources {
            let resource = FluentResource::try_new((*source).to_string()).map_err(|(_, e)| {
                CoreError::Internal(format!("bad {locale} {name} messages: {e:?}"))
            })?;
            let lang = locale
                .parse()
                .map_err(|_| CoreError::Internal(format!("bad locale {locale}")))?;
            let mut bundle = FluentBundle::new_concurrent(vec![lang]);
            // Plain-text messages: no Unicode isolation marks around arguments.
            bundle.set_use_isolating(false);
            bundle.add_resource(resource).map_err(|e| {
                CoreError::Internal(format!("duplicate {locale} {name} messages: {e:?}"))
            })?;
            bundles.push(((*locale).to_string(), bundle));
        }
        if !bundles.iter().any(|(l, _)| l == "en") {
            return Err(CoreError::Internal(format!("no English {name} messages")));
        }
        Ok(Catalog { name, bundles })
    }

    /// Renders message `id` (or its attribute `attr`) in the first locale of `chain`
    /// (or its language) that has it, else English. Returns the text and the locale
    /// used.
    pub fn render(
        &self,
        chain: &[&str],
        id: &str,
        attr: Option<&str>,
        args: &FluentArgs<'_>,
    ) -> CoreResult<(String, String)> {
        let found = chain
            .iter()
            .flat_map(|locale| {
                let lang = locale.split(['-', '_']).next().unwrap_or("en");
                [*locale, lang]
            })
            .find_map(|l| {
                self.bundles
                    .iter()
                    .find(|(bl, b)| bl == l && b.has_message(id))
            })
            .or_else(|| self.bundles.iter().find(|(l, _)| l == "en"));
        let (used, bundle) = found
            .ok_or_else(|| CoreError::Internal(format!("no English {} messages", self.name)))?;
        let msg = bundle
            .get_message(id)
            .ok_or_else(|| CoreError::Internal(format!("no {} message {id}", self.name)))?;
        let pattern = match attr {
            Some(a) => msg.get_attribute(a).map(|a| a.value()),
            None => msg.value(),
        };
        let Some(pattern) = pattern else {
            return Ok((String::new(), used.clone()));
        };
        let mut errors = Vec::new();
        let text = bundle
            .format_pattern(pattern, Some(args), &mut errors)
            .into_owned();
        if !errors.is_empty() {
            return Err(CoreError::Internal(format!(
                "rendering {id} in {used}: {errors:?}"
            )));
        }
        Ok((text, used.clone()))
    }
}

const ERRORS: &[(&str, &str)] = &[
    ("en", include_str!("../locales/en/errors.ftl")),
    ("ko", include_str!("../locales/ko/errors.ftl")),
    ("id", include_str!("../locales/id/errors.ftl")),
];

impl Catalog {
    /// Titles of problem documents (`error-<code>`) and field messages (`field-<code>`):
    /// the shipped ones plus plugins' (`locale`, `.ftl`
    /// source) pairs. A plugin may only add `error-<code>` and `field-<code>` messages
    /// and never redefine one a locale already has (the documented titles stay what the
    /// docs say); it may translate shipped ones into a locale the engine does not ship,
    /// which gets a bundle of its own.
    pub fn errors_with(extra: &[(String, String)]) -> CoreResult<Self> {
        let mut catalog = Catalog::load("error", ERRORS)?;
        // Languages before their regions (`en` before `en-US`), whatever order the
        // plugins came in, so the region check below sees every language message.
        let mut extra: Vec<&(String, String)> = extra.iter().collect();
        extra.sort_by_key(|(locale, _)| locale.contains(['-', '_']));
        for (locale, source) in extra {
            catalog.extend(locale, source)?;
        }
        Ok(catalog)
    }

    fn extend(&mut self, locale: &str, source: &str) -> CoreResult<()> {
        let bad =
            |why: String| CoreError::Internal(format!("plugin {locale} error messages: {why}"));
        let resource =
            FluentResource::try_new(source.to_string()).map_err(|(_, e)| bad(format!("{e:?}")))?;
        for entry in resource.entries() {
            if let fluent_syntax::ast::Entry::Message(m) = entry {
                let id = m.id.name;
                if !(id.starts_with("error-") || id.starts_with("field-")) {
                    return Err(bad(format!(
                        "`{id}` is neither `error-<code>` nor `field-<code>`"
                    )));
                }
                // `en-US` is tried before `en`: a message there would replace the
                // language's own for most browsers.
                let lang = locale.split(['-', '_']).next().unwrap_or(locale);
                if lang != locale && self.has(lang, id) {
                    return Err(bad(format!(
                        "`{id}` is already defined for `{lang}`, which `{locale}` would override"
                    )));
                }
            }
        }
        let index = match self.bundles.iter().position(|(l, _)| l == locale) {
            Some(i) => i,
            None => {
                let lang = locale
                    .parse()
                    .map_err(|_| bad("not a locale".to_string()))?;
                let mut bundle = FluentBundle::new_concurrent(vec![lang]);
                bundle.set_use_isolating(false);
                self.bundles.push((locale.to_string(), bundle));
                self.bundles.len() - 1
            }
        };
        self.bundles[index]
            .1
            .add_resource(resource)
            .map_err(|e| bad(format!("a message this locale already has: {e:?}")))
    }

    /// Whether the first locale of `chain` (or its language) has message `id`; used to
    /// decide whether a localized text exists before replacing an English one.
    pub fn has(&self, locale: &str, id: &str) -> bool {
        let lang = locale.split(['-', '_']).next().unwrap_or(locale);
        self.bundles
            .iter()
            .any(|(l, b)| (l == locale || l == lang) && b.has_message(id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Message ids of an `.ftl` source (top-level `id =` lines).
    fn ids(source: &str) -> std::collections::BTreeSet<&str> {
        source
            .lines()
            .filter_map(|l| l.split_once(" ="))
            .map(|(id, _)| id)
            .filter(|id| id.chars().next().is_some_and(|c| c.is_ascii_lowercase()))
            .filter(|id| {
                id.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            })
            .collect()
    }

    /// Every message of every catalog exists in every locale: no text falls back to
    /// English because a translation was forgotten.
    #[test]
    fn every_locale_has_every_message() {
        let catalogs: [(&str, &[(&str, &str)]); 3] = [
            ("errors", ERRORS),
            ("compliance", crate::compliance::registry::MESSAGES),
            ("notifications", crate::consumers::TEMPLATES),
        ];
        for (name, sources) in catalogs {
            let en = ids(sources.iter().find(|(l, _)| *l == "en").unwrap().1);
            assert!(en.len() > 3, "{name}: {en:?}");
            for (locale, src) in sources {
                assert_eq!(ids(src), en, "{name} {locale} differs from en");
            }
            Catalog::load("test", sources).unwrap();
        }
        let errors = Catalog::errors_with(&[]).expect("error catalog loads");
        let (text, used) = errors
            .render(
                &["ko-KR", "en"],
                "error-out_of_stock",
                None,
                &FluentArgs::new(),
            )
            .unwrap();
        assert_eq!(
            (text.as_str(), used.as_str()),
            ("이 상품의 재고가 부족합니다.", "ko")
        );
        assert!(errors.has("id", "field-required"));
        assert!(!errors.has("ja", "field-required"));
    }

    /// Plugins add titles for their own codes, and translations into locales the
    /// engine does not ship; they cannot retitle a documented code or add other kinds
    /// of messages.
    #[test]
    fn plugins_add_titles_but_never_replace_one() {
        let own = |l: &str, src: &str| vec![(l.to_string(), src.to_string())];
        let c = Catalog::errors_with(&own("ko", "error-qr_expired = QR 코드가 만료되었습니다.\n"))
            .unwrap();
        let args = FluentArgs::new();
        let (text, used) = c.render(&["ko"], "error-qr_expired", None, &args).unwrap();
        assert_eq!(
            (text.as_str(), used.as_str()),
            ("QR 코드가 만료되었습니다.", "ko")
        );
        // Another language falls back to English, which the plugin did not give: the
        // caller then keeps the HTTP reason (render fails, as for unknown codes).
        assert!(c.render(&["id"], "error-qr_expired", None, &args).is_err());

        let thai = Catalog::errors_with(&own("th", "error-out_of_stock = สินค้าหมด\n")).unwrap();
        let (text, used) = thai
            .render(&["th"], "error-out_of_stock", None, &args)
            .unwrap();
        assert_eq!((text.as_str(), used.as_str()), ("สินค้าหมด", "th"));

        // A plugin's own code in a region and then its language is refused the same
        // way as in the other order.
        let both = |first: &str, second: &str| {
            Catalog::errors_with(&[
                (first.to_string(), "error-qr = QR\n".to_string()),
                (second.to_string(), "error-qr = QR code\n".to_string()),
            ])
        };
        assert!(both("en", "en-US").is_err());
        assert!(both("en-US", "en").is_err());

        for (locale, src, why) in [
            ("en", "error-out_of_stock = Gone.\n", "already has"),
            ("en-US", "error-out_of_stock = Gone.\n", "would override"),
            ("en", "order-placed = Thanks\n", "neither"),
            ("en", "error-x = {\n", "plugin en error messages"),
            ("not a locale!", "error-x = X\n", "not a locale"),
        ] {
            let e = Catalog::errors_with(&own(locale, src))
                .unwrap_err()
                .to_string();
            assert!(e.contains(why), "{src:?}: {e}");
        }
    }

    /// A limit that could not be checked for want of a rate says so in every language,
    /// instead of "this cart is worth ?".
    #[test]
    fn an_unknown_amount_is_worded_not_shown() {
        let catalog = Catalog::load("compliance", crate::compliance::registry::MESSAGES).unwrap();
        for id in [
            "violation-value_limit_exceeded",
            "violation-annual_limit_exceeded",
        ] {
            for locale in ["en", "ko", "id"] {
                let mut args = FluentArgs::new();
                args.set("country", "ID");
                args.set("limit", "1500 USD");
                args.set("window", "none");
                args.set("actual", "unknown");
                let (text, used) = catalog.render(&[locale], id, None, &args).unwrap();
                assert_eq!(used, locale);
                assert!(!text.contains("unknown") && !text.contains('?'), "{text}");
                assert!(text.contains("1500 USD"), "{text}");
                args.set("actual", "1562.5 USD");
                let (text, _) = catalog.render(&[locale], id, None, &args).unwrap();
                assert!(text.contains("1562.5 USD"), "{text}");
            }
        }
    }
}
