//! The contract every country plugin keeps, as a test kit for plugin authors.
//!
//! Call [`check_plugin`] (or [`assert_plugin`]) from your plugin crate's tests with a
//! few [`ContractSamples`]. It checks what the engine relies on without a database or
//! an engine:
//!
//! - the country code is two uppercase letters and equals `rules.country`;
//! - the default rules validate ([`CountryRules::validate`]) and survive a JSON round
//!   trip through [`CountryRules::from_json`] unchanged (what an operator edit does);
//! - every rule (and every `served` period) has a non-empty source note;
//! - every identifier kind the plugin declares accepts its valid samples and rejects
//!   its invalid ones, normalization is idempotent, and an unknown kind is refused;
//! - every kind named by the rules' buyer identifiers and annual limits is declared by
//!   the plugin or listed as defined by another country's plugin;
//! - the compliant sample product passes `check_product_data` and has no listing
//!   violation on the sample day;
//! - every label statement has English text;
//! - listing, cart and checkout checks do not panic on an empty product or an empty
//!   cart (domestic and cross-border);
//! - the plugin's [`TaxPolicy`] gives zero tax and no landed cost on an empty cart.
//!
//! # Example
//!
//! ```
//! use chrono::NaiveDate;
//! use jangteo_core::compliance::contract::{check_plugin, ContractSamples};
//! use jangteo_core::compliance::{CountryCompliance, CountryRules, ProductFacts, TaxPolicy};
//!
//! #[derive(Debug)]
//! struct Antarctica;
//!
//! impl CountryCompliance for Antarctica {
//!     fn country(&self) -> &'static str {
//!         "AQ"
//!     }
//!     fn default_rules(&self) -> CountryRules {
//!         serde_json::from_value(serde_json::json!({
//!             "country": "AQ",
//!             "served": [{"valid_from": "2024-01-01", "source": "operator configuration"}],
//!             "import": {"buyer_identifiers": [
//!                 {"valid_from": "2024-01-01", "source": "example", "any_of": ["aq_station"]}
//!             ]}
//!         }))
//!         .unwrap()
//!     }
//!     fn identifier_kinds(&self) -> &'static [&'static str] {
//!         &["aq_station"]
//!     }
//!     fn validate_identifier(&self, kind: &str, value: &str, _day: NaiveDate) -> Result<String, String> {
//!         let v = value.trim().to_ascii_uppercase();
//!         match kind {
//!             "aq_station" if v.len() == 6 && v.bytes().all(|b| b.is_ascii_alphanumeric()) => Ok(v),
//!             "aq_station" => Err("6 letters or digits".into()),
//!             _ => Err(format!("{kind} is not an identifier of AQ")),
//!         }
//!     }
//! }
//!
//! impl TaxPolicy for Antarctica {}
//!
//! // In the plugin's tests:
//! let samples = ContractSamples::new(NaiveDate::from_ymd_opt(2026, 11, 28).unwrap(), ProductFacts::default())
//!     .identifier("aq_station", &["vostok", "MCM001"], &["ab12", "ab-12c"]);
//! assert_eq!(check_plugin(&Antarctica, &Antarctica, &samples), Ok(()));
//!
//! // A sample the plugin wrongly accepts is reported, not panicked on.
//! let bad = samples.clone().identifier("aq_station", &["vostok"], &["ABCDEF"]);
//! let errors = check_plugin(&Antarctica, &Antarctica, &bad).unwrap_err();
//! assert!(errors[0].contains("ABCDEF"), "{errors:?}");
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::panic::{catch_unwind, AssertUnwindSafe};

use chrono::NaiveDate;

use super::product::{CountryData, ProductFacts};
use super::rules::{CountryRules, Validity};
use super::tax::TaxInput;
use super::{BuyerHistory, CartFacts, CountryCompliance, ExchangeRates, TaxPolicy};
use crate::money::{Currency, Money};

/// Valid and invalid examples of one identifier kind.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IdentifierSamples {
    /// Values the plugin must accept (in any input form it normalizes).
    pub valid: Vec<String>,
    /// Values it must refuse.
    pub invalid: Vec<String>,
}

/// What the contract check needs from the plugin author.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContractSamples {
    /// The day listing and cart checks are made for (one the country is served on).
    pub day: NaiveDate,
    /// A product that may be listed in the country on `day`.
    pub compliant_product: ProductFacts,
    /// Samples per identifier kind; every kind the plugin declares needs at least one
    /// valid and one invalid sample.
    pub identifiers: BTreeMap<String, IdentifierSamples>,
    /// Identifier kinds the rules name but another country's plugin defines.
    pub defined_elsewhere: BTreeSet<String>,
}

impl ContractSamples {
    /// Samples for `day` with a compliant product and no identifiers yet.
    pub fn new(day: NaiveDate, compliant_product: ProductFacts) -> Self {
        ContractSamples {
            day,
            compliant_product,
            identifiers: BTreeMap::new(),
            defined_elsewhere: BTreeSet::new(),
        }
    }

    /// Sets the valid and invalid samples of an identifier kind (replacing earlier ones).
    pub fn identifier(mut self, kind: &str, valid: &[&str], invalid: &[&str]) -> Self {
        self.identifiers.insert(
            kind.to_string(),
            IdentifierSamples {
                valid: valid.iter().map(|s| s.to_string()).collect(),
                invalid: invalid.iter().map(|s| s.to_string()).collect(),
            },
        );
        self
    }

    /// Declares that `kind`, named in the rules, is defined by another country's plugin.
    pub fn defined_elsewhere(mut self, kind: &str) -> Self {
        self.defined_elsewhere.insert(kind.to_string());
        self
    }
}

fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-text panic".into())
}

/// Runs `f`, turning a panic into an error line.
fn guarded<T>(what: &str, errors: &mut Vec<String>, f: impl FnOnce() -> T) -> Option<T> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(v) => Some(v),
        Err(p) => {
            errors.push(format!("{what} panicked: {}", panic_text(p.as_ref())));
            None
        }
    }
}

/// Every validity of the rules, with its path.
fn validities(r: &CountryRules) -> Vec<(String, &Validity)> {
    fn each<'a, T>(
        out: &mut Vec<(String, &'a Validity)>,
        name: &str,
        list: &'a [T],
        v: impl Fn(&'a T) -> &'a Validity,
    ) {
        for (i, x) in list.iter().enumerate() {
            out.push((format!("{name}[{i}]"), v(x)));
        }
    }
    let mut out = Vec::new();
    each(&mut out, "served", &r.served, |v| v);
    each(&mut out, "registration", &r.registration, |x| &x.validity);
    each(&mut out, "halal", &r.halal, |x| &x.validity);
    each(
        &mut out,
        "prohibited_ingredients",
        &r.prohibited_ingredients,
        |x| &x.validity,
    );
    each(&mut out, "dose_limits", &r.dose_limits, |x| &x.validity);
    each(&mut out, "label_statements", &r.label_statements, |x| {
        &x.validity
    });
    let i = &r.import;
    each(
        &mut out,
        "import.quantity_limits",
        &i.quantity_limits,
        |x| &x.validity,
    );
    each(&mut out, "import.value_limits", &i.value_limits, |x| {
        &x.validity
    });
    each(&mut out, "import.annual_limits", &i.annual_limits, |x| {
        &x.validity
    });
    each(
        &mut out,
        "import.buyer_identifiers",
        &i.buyer_identifiers,
        |x| &x.validity,
    );
    each(&mut out, "import.duties", &i.duties, |x| &x.validity);
    each(&mut out, "tax", &r.tax, |x| &x.validity);
    out
}

fn check_identifiers(
    plugin: &dyn CountryCompliance,
    rules: &CountryRules,
    samples: &ContractSamples,
    e: &mut Vec<String>,
) {
    let day = samples.day;
    let declared = plugin.identifier_kinds();
    let mut seen = BTreeSet::new();
    for kind in declared {
        if !seen.insert(*kind) {
            e.push(format!("identifier kind `{kind}` is declared twice"));
        }
        let Some(s) = samples.identifiers.get(*kind) else {
            e.push(format!("identifier kind `{kind}` has no samples"));
            continue;
        };
        if s.valid.is_empty() || s.invalid.is_empty() {
            e.push(format!(
                "identifier kind `{kind}` needs at least one valid and one invalid sample"
            ));
        }
        for v in &s.valid {
            let what = format!("validate_identifier({kind}, {v:?})");
            match guarded(&what, e, || plugin.validate_identifier(kind, v, day)) {
                Some(Ok(n)) if n.is_empty() => {
                    e.push(format!("{what} normalized to an empty value"))
                }
                Some(Ok(n)) => {
                    let again = format!("validate_identifier({kind}, {n:?})");
                    match guarded(&again, e, || plugin.validate_identifier(kind, &n, day)) {
                        Some(Ok(m)) if m == n => {}
                        Some(Ok(m)) => e.push(format!(
                            "normalization of `{kind}` is not idempotent: {v:?} -> {n:?} -> {m:?}"
                        )),
                        Some(Err(r)) => e.push(format!(
                            "`{kind}` refuses its own normalized value {n:?} (from {v:?}): {r}"
                        )),
                        None => {}
                    }
                }
                Some(Err(r)) => e.push(format!("valid {kind} sample {v:?} was refused: {r}")),
                None => {}
            }
        }
        for v in &s.invalid {
            let what = format!("validate_identifier({kind}, {v:?})");
            match guarded(&what, e, || plugin.validate_identifier(kind, v, day)) {
                Some(Ok(n)) => e.push(format!("invalid {kind} sample {v:?} was accepted as {n:?}")),
                Some(Err(r)) if r.trim().is_empty() => {
                    e.push(format!("{what} refused without a reason"))
                }
                _ => {}
            }
        }
    }
    for kind in samples.identifiers.keys() {
        if !declared.contains(&kind.as_str()) {
            e.push(format!(
                "samples given for `{kind}`, which the plugin does not declare"
            ));
        }
    }
    let unknown = "contract_unknown_kind";
    if let Some(Ok(n)) = guarded("validate_identifier of an unknown kind", e, || {
        plugin.validate_identifier(unknown, "123456789012", day)
    }) {
        e.push(format!("an unknown identifier kind was accepted as {n:?}"));
    }
    let mut named: BTreeSet<&str> = BTreeSet::new();
    for r in &rules.import.buyer_identifiers {
        named.extend(r.any_of.iter().map(String::as_str));
    }
    for a in &rules.import.annual_limits {
        named.insert(a.identifier.as_str());
    }
    for kind in named {
        if !declared.contains(&kind) && !samples.defined_elsewhere.contains(kind) {
            e.push(format!(
                "the rules name identifier kind `{kind}`, which the plugin does not declare \
                 (list it with `defined_elsewhere` if another country's plugin defines it)"
            ));
        }
    }
    for kind in &samples.defined_elsewhere {
        if declared.contains(&kind.as_str()) {
            e.push(format!(
                "`{kind}` is listed as defined elsewhere but the plugin declares it"
            ));
        }
    }
}

fn empty_carts(
    plugin: &dyn CountryCompliance,
    tax: &dyn TaxPolicy,
    rules: &CountryRules,
    code: &str,
    day: NaiveDate,
    e: &mut Vec<String>,
) {
    let identifiers = BTreeMap::new();
    let rates = ExchangeRates::default();
    let history = BuyerHistory::default();
    // Some other country as origin, for the cross-border case.
    let abroad = if code == "ZZ" { "ZY" } else { "ZZ" };
    for origin in [code, abroad] {
        for hist in [None, Some(&history)] {
            let cart = CartFacts {
                country: code,
                origin,
                day,
                lines: &[],
                subtotal: Money::zero(Currency::USD),
                identifiers: &identifiers,
                rates: &rates,
                history: hist,
            };
            guarded(
                &format!("check_cart on an empty cart from {origin}"),
                e,
                || plugin.check_cart(rules, &cart),
            );
            guarded(
                &format!("check_checkout on an empty cart from {origin}"),
                e,
                || plugin.check_checkout(rules, &cart),
            );
        }
        for currency in [Currency::USD, Currency::KRW] {
            let input = TaxInput {
                country: code,
                origin,
                day,
                currency,
                lines: &[],
                rates: &rates,
            };
            let what = format!("tax of an empty {currency} cart from {origin}");
            match guarded(&what, e, || tax.tax(rules, &input)) {
                Some(Ok(out))
                    if !out.tax.amount.is_zero()
                        || !out.duties.amount.is_zero()
                        || !out.lines.is_empty()
                        || out.landed_cost.is_some() =>
                {
                    e.push(format!(
                        "{what} is not zero: tax {}, duties {}, {} lines, landed cost {}",
                        out.tax,
                        out.duties,
                        out.lines.len(),
                        out.landed_cost.is_some()
                    ));
                }
                Some(Err(err)) => e.push(format!("{what} failed: {err}")),
                Some(Ok(_)) | None => {}
            }
        }
    }
}

/// Checks a country plugin against the contract the engine relies on (see the module
/// documentation); `compliance` and `tax` are usually the same value. Returns every
/// broken clause, one line each; a panic inside the plugin is reported as a line.
pub fn check_plugin(
    compliance: &dyn CountryCompliance,
    tax: &dyn TaxPolicy,
    samples: &ContractSamples,
) -> Result<(), Vec<String>> {
    let mut e = Vec::new();
    let code = compliance.country();
    if code.len() != 2 || !code.bytes().all(|b| b.is_ascii_uppercase()) {
        e.push(format!(
            "country code {code:?} is not two uppercase letters"
        ));
    }
    let Some(rules) = guarded("default_rules", &mut e, || compliance.default_rules()) else {
        return Err(e);
    };
    if rules.country != code {
        e.push(format!(
            "rules are for {:?}, the plugin is {code:?}",
            rules.country
        ));
    }
    for err in rules.validate(code) {
        e.push(format!(
            "default rules: {}: {} ({})",
            err.field, err.message, err.code
        ));
    }
    match serde_json::to_value(&rules) {
        Ok(json) => match CountryRules::from_json(&json, code) {
            Ok(back) if back == rules => {}
            Ok(_) => e.push("default rules change in a JSON round trip".into()),
            Err(errs) => {
                for err in errs {
                    e.push(format!(
                        "default rules after a JSON round trip: {}: {} ({})",
                        err.field, err.message, err.code
                    ));
                }
            }
        },
        Err(err) => e.push(format!("default rules do not serialize: {err}")),
    }
    for (path, v) in validities(&rules) {
        if v.source.trim().is_empty() {
            e.push(format!("{path} has no source note"));
        }
    }
    for (i, s) in rules.label_statements.iter().enumerate() {
        if s.text.0.get("en").is_none_or(|t| t.trim().is_empty()) {
            e.push(format!(
                "label_statements[{i}] ({}) has no English text",
                s.key
            ));
        }
    }
    check_identifiers(compliance, &rules, samples, &mut e);

    let day = samples.day;
    let product = &samples.compliant_product;
    if let Some(data) = product.country(code) {
        let path = format!("countries.{code}");
        let mut errors = Vec::new();
        guarded(
            "check_product_data on the compliant product",
            &mut e,
            || compliance.check_product_data(&rules, data, day, &path, &mut errors),
        );
        for err in errors {
            e.push(format!(
                "compliant product data refused: {}: {} ({})",
                err.field, err.message, err.code
            ));
        }
    }
    if let Some(v) = guarded("listing of the compliant product", &mut e, || {
        compliance.listing(&rules, product, day)
    }) {
        for viol in v {
            e.push(format!(
                "compliant product has a listing violation on {day}: {} {:?}",
                viol.code.as_str(),
                viol.args
            ));
        }
    }
    let mut empty_here = ProductFacts::default();
    empty_here
        .countries
        .insert(code.to_string(), CountryData::default());
    for (what, p) in [
        ("an empty product", ProductFacts::default()),
        ("empty country data", empty_here),
    ] {
        guarded(&format!("listing of {what}"), &mut e, || {
            compliance.listing(&rules, &p, day)
        });
    }
    empty_carts(compliance, tax, &rules, code, day, &mut e);

    if e.is_empty() {
        Ok(())
    } else {
        Err(e.into_iter().map(|m| format!("{code}: {m}")).collect())
    }
}

/// [`check_plugin`], panicking with every broken clause (for `#[test]` functions).
pub fn assert_plugin(
    compliance: &dyn CountryCompliance,
    tax: &dyn TaxPolicy,
    samples: &ContractSamples,
) {
    if let Err(errors) = check_plugin(compliance, tax, samples) {
        panic!(
            "the plugin breaks the country plugin contract:\n  {}",
            errors.join("\n  ")
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compliance::Violation;
    use crate::CoreResult;

    /// A plugin whose every part can be broken on purpose.
    #[derive(Debug, Default)]
    struct Fake {
        rules: serde_json::Value,
        sloppy_ids: bool,
        panics: bool,
        taxes_nothing: bool,
    }

    fn rules() -> serde_json::Value {
        serde_json::json!({
            "country": "ZQ",
            "served": [{"valid_from": "2024-01-01", "source": "operator configuration"}],
            "prohibited_ingredients": [{"valid_from": "2024-01-01", "source": "t", "ingredient": "melatonin"}],
            "label_statements": [{"valid_from": "2024-01-01", "source": "t", "key": "k", "when": "always", "text": {"en": "E", "ko": "K"}}],
            "import": {
                "buyer_identifiers": [{"valid_from": "2024-01-01", "source": "t", "any_of": ["zq_card", "xx_other"]}]
            }
        })
    }

    impl CountryCompliance for Fake {
        fn country(&self) -> &'static str {
            "ZQ"
        }
        fn default_rules(&self) -> CountryRules {
            serde_json::from_value(self.rules.clone()).unwrap()
        }
        fn identifier_kinds(&self) -> &'static [&'static str] {
            &["zq_card"]
        }
        fn validate_identifier(
            &self,
            kind: &str,
            value: &str,
            _day: NaiveDate,
        ) -> Result<String, String> {
            if kind != "zq_card" && !self.sloppy_ids {
                return Err("not ZQ".into());
            }
            if self.sloppy_ids {
                // Accepts anything and normalizes differently each time.
                return Ok(format!("{value}!"));
            }
            let v = value.trim().to_ascii_uppercase();
            if v.len() == 4 && v.bytes().all(|b| b.is_ascii_digit()) {
                Ok(v)
            } else {
                Err("4 digits".into())
            }
        }
        fn listing(
            &self,
            rules: &CountryRules,
            product: &ProductFacts,
            day: NaiveDate,
        ) -> Vec<Violation> {
            if self.panics && product.ingredients.is_empty() {
                panic!("empty product");
            }
            super::super::evaluate::listing(rules, product, day)
        }
    }

    impl TaxPolicy for Fake {
        fn tax(
            &self,
            rules: &CountryRules,
            input: &TaxInput<'_>,
        ) -> CoreResult<super::super::TaxOutcome> {
            let mut out = super::super::tax::from_rules(rules, input)?;
            if self.taxes_nothing {
                out.tax = Money::parse("1", input.currency)?;
            }
            Ok(out)
        }
    }

    fn samples() -> ContractSamples {
        let product: ProductFacts = serde_json::from_value(serde_json::json!({
            "ingredients": [{"name": "zinc", "amount": "10", "unit": "mg"}]
        }))
        .unwrap();
        ContractSamples::new(NaiveDate::from_ymd_opt(2026, 11, 28).unwrap(), product)
            .identifier("zq_card", &["1234", " 0007 "], &["123", "12a4"])
            .defined_elsewhere("xx_other")
    }

    fn fake() -> Fake {
        Fake {
            rules: rules(),
            ..Fake::default()
        }
    }

    fn errors(f: &Fake, s: &ContractSamples) -> Vec<String> {
        check_plugin(f, f, s).err().unwrap_or_default()
    }

    fn has(errors: &[String], needle: &str) -> bool {
        errors.iter().any(|e| e.contains(needle))
    }

    #[test]
    fn a_sound_plugin_passes() {
        assert_eq!(check_plugin(&fake(), &fake(), &samples()), Ok(()));
    }

    #[test]
    fn broken_rules_are_reported() {
        let mut f = fake();
        f.rules["label_statements"][0]["text"] = serde_json::json!({"ko": "K"});
        f.rules["prohibited_ingredients"][0]["source"] = serde_json::json!(" ");
        f.rules["country"] = serde_json::json!("ZR");
        let e = errors(&f, &samples());
        assert!(
            has(&e, "label_statements[0] (k) has no English text"),
            "{e:?}"
        );
        assert!(
            has(&e, "prohibited_ingredients[0] has no source note"),
            "{e:?}"
        );
        assert!(has(&e, "rules are for \"ZR\""), "{e:?}");
        assert!(has(&e, "default rules: country:"), "{e:?}");
        assert!(e.iter().all(|l| l.starts_with("ZQ: ")), "{e:?}");
    }

    #[test]
    fn identifier_clauses_are_reported() {
        // Missing samples for a declared kind, and a rule kind nobody defines.
        let s = ContractSamples::new(samples().day, samples().compliant_product);
        let e = errors(&fake(), &s);
        assert!(has(&e, "identifier kind `zq_card` has no samples"), "{e:?}");
        assert!(
            has(&e, "kind `xx_other`, which the plugin does not declare"),
            "{e:?}"
        );

        // Wrong samples: a valid one refused, an invalid one accepted.
        let s = samples().identifier("zq_card", &["12345"], &["9999"]);
        let e = errors(&fake(), &s);
        assert!(
            has(&e, "valid zq_card sample \"12345\" was refused"),
            "{e:?}"
        );
        assert!(
            has(&e, "invalid zq_card sample \"9999\" was accepted"),
            "{e:?}"
        );

        // Accepts everything, unknown kinds included; normalization not idempotent.
        let f = Fake {
            sloppy_ids: true,
            ..fake()
        };
        let e = errors(&f, &samples());
        assert!(has(&e, "not idempotent"), "{e:?}");
        assert!(has(&e, "an unknown identifier kind was accepted"), "{e:?}");
        assert!(
            has(&e, "invalid zq_card sample \"123\" was accepted"),
            "{e:?}"
        );

        // Samples for a kind the plugin does not declare.
        let s = samples().identifier("zz_nope", &["1"], &["2"]);
        assert!(has(&errors(&fake(), &s), "samples given for `zz_nope`"));
    }

    #[test]
    fn listing_panics_and_violations_are_reported() {
        let f = Fake {
            panics: true,
            ..fake()
        };
        let e = errors(&f, &samples());
        assert!(
            has(&e, "listing of an empty product panicked: empty product"),
            "{e:?}"
        );

        let mut s = samples();
        s.compliant_product.ingredients[0].name = "Melatonin".into();
        let e = errors(&fake(), &s);
        assert!(
            has(
                &e,
                "compliant product has a listing violation on 2026-11-28: ingredient_prohibited"
            ),
            "{e:?}"
        );

        let mut s = samples();
        s.day = NaiveDate::from_ymd_opt(2023, 12, 31).unwrap();
        assert!(has(&errors(&fake(), &s), "country_not_served"));
    }

    #[test]
    fn tax_on_an_empty_cart_must_be_zero() {
        let f = Fake {
            taxes_nothing: true,
            ..fake()
        };
        let e = errors(&f, &samples());
        assert!(
            has(&e, "tax of an empty USD cart from ZQ is not zero"),
            "{e:?}"
        );
    }
}
