//! The data-driven checks behind the default [`super::CountryCompliance`] methods.
//!
//! Everything here is a pure function of rule data, product data, the cart and a day,
//! so a decision can be replayed for any date and benchmarked without I/O.

use std::collections::BTreeMap;

use chrono::{Datelike, NaiveDate};
use rust_decimal::Decimal;
use serde_json::json;

use super::product::{CountryData, ProductFacts};
use super::rules::{in_force, CountryRules, Dose, QuantityScope, RuleMoney};
use super::{CartFacts, Violation, ViolationCode};
use crate::error::FieldError;
use crate::ids::{LineId, ProductId};
use crate::money::{Currency, Money};

/// Does `number` match the registration `pattern`? Patterns are compiled once per
/// process (rule data holds a handful; compiling per check would dominate a cart's
/// evaluation). An invalid pattern matches nothing: rules are validated when stored.
pub fn pattern_matches(pattern: &str, number: &str) -> bool {
    use std::collections::HashMap;
    use std::sync::{Arc, OnceLock, RwLock};
    static CACHE: OnceLock<RwLock<HashMap<String, Option<Arc<regex_lite::Regex>>>>> =
        OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    let found = cache
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .get(pattern)
        .cloned();
    let re = match found {
        Some(re) => re,
        None => {
            let re = regex_lite::Regex::new(pattern).ok().map(Arc::new);
            let mut w = cache.write().unwrap_or_else(|e| e.into_inner());
            // Operators replace rules rarely; a bound keeps a pathological stream of
            // edits from growing the cache without end.
            if w.len() > 1_000 {
                w.clear();
            }
            w.insert(pattern.to_string(), re.clone());
            re
        }
    };
    re.is_some_and(|re| re.is_match(number))
}

/// Is the store selling into the country on `day`?
pub fn served(rules: &CountryRules, day: NaiveDate) -> bool {
    rules.served.iter().any(|v| v.in_force(day))
}

/// Lowercased words: letters and digits, everything else a separator.
fn words(s: &str) -> Vec<String> {
    s.to_lowercase()
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_string)
        .collect()
}

/// The rule's name (or an alias) appears as whole words in the ingredient's name:
/// labels write `Melatonin (3 mg)` or `Vitamin D (as cholecalciferol)`, and a rule that
/// matched only the exact name would let them through. `vitamin D` does not match
/// `vitamin D3` (another word); rules list such forms as aliases.
fn matches_ingredient(name: &str, canonical: &str, aliases: &[String]) -> bool {
    let name = words(name);
    std::iter::once(canonical)
        .chain(aliases.iter().map(String::as_str))
        .map(words)
        .any(|rule| !rule.is_empty() && name.windows(rule.len()).any(|w| w == rule.as_slice()))
}

/// `µg`, `μg` and `mcg` are one unit.
fn unit_key(u: &str) -> String {
    let u = u.trim().to_lowercase();
    match u.as_str() {
        "µg" | "μg" | "ug" => "mcg".into(),
        _ => u,
    }
}

/// Checks `countries.CC` when a product is saved, beyond the common shape (checked by
/// the catalog): the registration number against the patterns that are or will be in
/// force, and that only the fields the plugin defines are present.
pub fn check_country_data(
    rules: &CountryRules,
    data: &CountryData,
    extra_fields: &[&str],
    day: NaiveDate,
    path: &str,
    errors: &mut Vec<FieldError>,
) {
    if let Some(reg) = &data.registration {
        // A number must fit a pattern that is or will be in force (an operator may
        // enter next year's format ahead of the change); past formats are history.
        let candidates: Vec<_> = rules
            .registration
            .iter()
            .filter(|r| r.validity.valid_to.is_none_or(|to| to >= day))
            .collect();
        if !candidates.is_empty() {
            let ok = candidates
                .iter()
                .any(|r| pattern_matches(&r.pattern, &reg.number));
            if !ok {
                errors.push(FieldError::new(
                    format!("{path}.registration.number"),
                    "invalid_format",
                    format!(
                        "not a {} registration number (e.g. {})",
                        candidates[0].authority, candidates[0].example
                    ),
                ));
            }
        }
    }
    for key in data.extra.keys() {
        if !extra_fields.contains(&key.as_str()) {
            errors.push(FieldError::new(
                format!("{path}.{key}"),
                "unknown_field",
                format!("unknown field for {}", rules.country),
            ));
        }
    }
}

/// Sales rules for one product (listing, and each cart line).
fn sales(
    rules: &CountryRules,
    product: &ProductFacts,
    day: NaiveDate,
    line: Option<LineId>,
    product_id: ProductId,
    out: &mut Vec<Violation>,
) {
    let data = product.country(&rules.country);
    for r in in_force(&rules.registration, day) {
        let ok = data
            .and_then(|d| d.registration.as_ref())
            .is_some_and(|reg| reg.expires_on >= day && pattern_matches(&r.pattern, &reg.number));
        if !ok {
            // Named as expired only when it is; a malformed number is just missing.
            let expired = data
                .and_then(|d| d.registration.as_ref())
                .filter(|reg| reg.expires_on < day)
                .map(|reg| reg.expires_on.to_string());
            let mut v = Violation::new(ViolationCode::NotRegistered)
                .on_line(line, product_id)
                .arg("authority", &r.authority)
                .arg("expired", "none");
            if let Some(e) = expired {
                v = v.arg("expired", e);
            }
            out.push(v);
        }
    }
    for r in in_force(&rules.halal, day) {
        let ok = match data.and_then(|d| d.halal.as_ref()) {
            Some(Some(cert)) => cert.expires_on >= day,
            Some(None) => r.non_halal_allowed,
            None => false,
        };
        if !ok {
            out.push(Violation::new(ViolationCode::HalalRequired).on_line(line, product_id));
        }
    }
    for ing in &product.ingredients {
        for ban in in_force(&rules.prohibited_ingredients, day) {
            if matches_ingredient(&ing.name, &ban.ingredient, &ban.aliases) {
                out.push(
                    Violation::new(ViolationCode::IngredientProhibited)
                        .on_line(line, product_id)
                        .arg("ingredient", &ing.name),
                );
            }
        }
    }
    for cap in in_force(&rules.dose_limits, day) {
        // The daily dose is what every entry of the ingredient adds up to: a product may
        // list it twice, or under an alias, or in two units.
        let entries: Vec<_> = product
            .ingredients
            .iter()
            .filter(|i| matches_ingredient(&i.name, &cap.ingredient, &cap.aliases))
            .collect();
        let Some(first) = entries.first() else {
            continue;
        };
        // Entries in different units add up as shares of the cap in each unit (the
        // rule lists the same limit in several units: 1000 IU and 25 mcg). A unit the
        // rule does not list cannot be shown to be within the cap: refuse rather than
        // guess a conversion.
        let limit_in = |unit: &str| {
            cap.max
                .iter()
                .find(|d| unit_key(&d.unit) == unit_key(unit) && d.amount > Decimal::ZERO)
        };
        let share = entries.iter().try_fold(Decimal::ZERO, |sum, i| {
            sum.checked_add(i.amount.checked_div(limit_in(&i.unit)?.amount)?)
        });
        if share.is_some_and(|s| s <= Decimal::ONE) {
            continue;
        }
        let limit: &Dose = limit_in(&first.unit).unwrap_or(&cap.max[0]);
        let actual = entries
            .iter()
            .map(|i| format!("{} {}", i.amount, i.unit))
            .collect::<Vec<_>>()
            .join(" + ");
        let limit_text = format!("{} {}", limit.amount, limit.unit);
        out.push(
            Violation::new(ViolationCode::DoseLimitExceeded)
                .on_line(line, product_id)
                .figures(limit_text.clone(), actual.clone())
                .arg("ingredient", &first.name)
                .arg("limit", limit_text)
                .arg("actual", actual),
        );
    }
}

/// Moment 1: why a product cannot be listed in the country on `day`.
pub fn listing(rules: &CountryRules, product: &ProductFacts, day: NaiveDate) -> Vec<Violation> {
    let mut out = Vec::new();
    if !served(rules, day) {
        out.push(Violation::new(ViolationCode::CountryNotServed));
        return out;
    }
    sales(
        rules,
        product,
        day,
        None,
        ProductId(uuid::Uuid::nil()),
        &mut out,
    );
    for v in &mut out {
        v.product_id = None;
    }
    out
}

fn money_json(amount: Decimal, currency: crate::money::Currency) -> serde_json::Value {
    json!({"amount": amount.normalize().to_string(), "currency": currency})
}

/// The cart's goods value plus that of `earlier` orders, in `currency`, unrounded;
/// `None` when a rate is missing (the caller then refuses rather than guess).
fn total_with<'a>(
    cart: &CartFacts<'_>,
    currency: Currency,
    earlier: impl Iterator<Item = &'a super::PastOrder>,
) -> Option<Decimal> {
    let convert = |m: Money| cart.rates.convert(m.amount, m.currency, currency);
    let mut total = convert(cart.subtotal)?;
    for o in earlier {
        total += convert(o.subtotal)?;
    }
    Some(total)
}

/// A limit on an amount was passed, or could not be checked for want of a rate
/// (`found` none: `actual` is `unknown`, which the messages word on their own).
fn over_amount(code: ViolationCode, max: &RuleMoney, found: Option<Decimal>) -> Violation {
    let shown = found.map(|t| max.currency.round(t));
    let mut v = Violation::new(code)
        .arg(
            "limit",
            format!("{} {}", max.amount.normalize(), max.currency),
        )
        .arg(
            "actual",
            shown.map_or("unknown".into(), |s| {
                format!("{} {}", s.normalize(), max.currency)
            }),
        );
    v.limit = Some(money_json(max.amount, max.currency));
    v.actual = shown.map(|s| money_json(s, max.currency));
    v
}

/// Moment 2: sales rules per line, then import rules when the goods cross a border.
pub fn cart(rules: &CountryRules, cart: &CartFacts<'_>) -> Vec<Violation> {
    let mut out = Vec::new();
    if !served(rules, cart.day) {
        out.push(Violation::new(ViolationCode::CountryNotServed));
        return out;
    }
    for l in cart.lines {
        sales(
            rules,
            l.product,
            cart.day,
            l.line_id,
            l.product_id,
            &mut out,
        );
    }
    if !cart.cross_border() {
        return out;
    }
    let imp = &rules.import;
    for q in in_force(&imp.quantity_limits, cart.day) {
        // Earlier orders to the same recipient inside the window count too, so a split
        // order cannot pass a limit the whole would break.
        let past: Vec<&super::PastOrder> = match (q.window_days, cart.history) {
            (Some(w), Some(h)) => h.within(cart.day, w).collect(),
            _ => Vec::new(),
        };
        // The message mentions earlier orders only when they were counted.
        let window = match (q.window_days, cart.history) {
            (Some(w), Some(_)) => w.to_string(),
            _ => "none".to_string(),
        };
        match q.scope {
            QuantityScope::PerOrder => {
                let earlier: i64 = past.iter().flat_map(|o| &o.units).map(|(_, n)| n).sum();
                let total: i64 = cart.lines.iter().map(|l| l.quantity).sum::<i64>() + earlier;
                if total > q.max {
                    out.push(
                        Violation::new(ViolationCode::QuantityLimitExceeded)
                            .figures(q.max, total)
                            .arg("limit", q.max)
                            .arg("actual", total)
                            .arg("window", &window),
                    );
                }
            }
            QuantityScope::PerProduct => {
                let mut per: BTreeMap<ProductId, (i64, Option<LineId>)> = BTreeMap::new();
                for l in cart.lines {
                    let e = per.entry(l.product_id).or_insert((0, l.line_id));
                    e.0 += l.quantity;
                }
                for (pid, (n, line)) in per {
                    let earlier: i64 = past
                        .iter()
                        .flat_map(|o| &o.units)
                        .filter(|(p, _)| *p == pid)
                        .map(|(_, n)| n)
                        .sum();
                    let n = n + earlier;
                    if n > q.max {
                        out.push(
                            Violation::new(ViolationCode::QuantityLimitExceeded)
                                .on_line(line, pid)
                                .figures(q.max, n)
                                .arg("limit", q.max)
                                .arg("actual", n)
                                .arg("window", &window),
                        );
                    }
                }
            }
        }
    }
    let units: i64 = cart.lines.iter().map(|l| l.quantity).sum();
    for v in in_force(&imp.value_limits, cart.day) {
        if v.single_item_exempt && units == 1 {
            continue;
        }
        let earlier = match (v.window_days, cart.history) {
            (Some(w), Some(h)) => Some(h.within(cart.day, w)),
            _ => None,
        };
        let counted = earlier.is_some();
        let value = total_with(cart, v.max.currency, earlier.into_iter().flatten());
        if value.is_some_and(|t| t <= v.max.amount) {
            continue;
        }
        // The message mentions earlier orders only when they were counted.
        let window = match v.window_days {
            Some(w) if counted => w.to_string(),
            _ => "none".to_string(),
        };
        out.push(
            over_amount(ViolationCode::ValueLimitExceeded, &v.max, value).arg("window", window),
        );
    }
    for r in in_force(&imp.buyer_identifiers, cart.day) {
        if r.any_of.iter().any(|k| cart.identifiers.contains_key(k)) {
            continue;
        }
        let wrong: Vec<&String> = cart.identifiers.keys().collect();
        let code = if wrong.is_empty() {
            ViolationCode::BuyerIdRequired
        } else {
            ViolationCode::BuyerIdInvalid
        };
        out.push(Violation::new(code).arg("kinds", r.any_of.join(", ")));
    }
    out
}

/// Moment 3 addition: yearly per-buyer limits, from the history the engine read in the
/// order's transaction. A missing history (no identifier) is reported by the
/// identifier rules, not here.
pub fn annual(rules: &CountryRules, cart: &CartFacts<'_>) -> Vec<Violation> {
    let mut out = Vec::new();
    if !cart.cross_border() {
        return out;
    }
    let Some(history) = cart.history else {
        return out;
    };
    for a in in_force(&rules.import.annual_limits, cart.day) {
        if !cart.identifiers.contains_key(&a.identifier) || history.identifier != a.identifier {
            continue;
        }
        let this_year = history
            .orders
            .iter()
            .filter(|o| o.created_at.date_naive().year() == cart.day.year());
        let total = total_with(cart, a.max.currency, this_year);
        if total.is_none_or(|t| t > a.max.amount) {
            out.push(over_amount(
                ViolationCode::AnnualLimitExceeded,
                &a.max,
                total,
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compliance::product::Registration;
    use crate::compliance::{BuyerHistory, ExchangeRates, LineFacts, PastOrder};
    use crate::money::{Currency, Money};

    fn rules() -> CountryRules {
        serde_json::from_value(serde_json::json!({
            "country": "ID",
            "served": [{"valid_from": "2024-01-01", "source": "t"}],
            "registration": [
                {"valid_from": "2020-01-01", "valid_to": "2025-12-31", "source": "old",
                 "authority": "BPOM", "pattern": "^ML[0-9]{12}$", "example": "ML123456789012"},
                {"valid_from": "2026-01-01", "source": "new",
                 "authority": "BPOM", "pattern": "^POM SI[0-9]{9}$", "example": "POM SI123456789"}
            ],
            "import": {"quantity_limits": [
                {"valid_from": "2024-01-01", "source": "t", "scope": "per_order", "max": 6, "window_days": 90}
            ]}
        }))
        .unwrap()
    }

    fn day(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    fn registered(number: &str, expires: &str) -> ProductFacts {
        let mut p = ProductFacts::default();
        p.countries.insert(
            "ID".into(),
            CountryData {
                registration: Some(Registration {
                    number: number.into(),
                    holder: "PT X".into(),
                    expires_on: day(expires),
                }),
                ..Default::default()
            },
        );
        p
    }

    #[test]
    fn a_retired_registration_format_is_refused_when_saving() {
        let r = rules();
        let mut errors = Vec::new();
        let old = registered("ML123456789012", "2029-01-01");
        check_country_data(
            &r,
            old.country("ID").unwrap(),
            &[],
            day("2026-11-28"),
            "countries.ID",
            &mut errors,
        );
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0].code, "invalid_format");
        // While the old format was in force it was accepted.
        errors.clear();
        check_country_data(
            &r,
            old.country("ID").unwrap(),
            &[],
            day("2025-06-01"),
            "countries.ID",
            &mut errors,
        );
        assert!(errors.is_empty(), "{errors:?}");
    }

    #[test]
    fn only_an_expired_registration_is_called_expired() {
        let r = rules();
        let malformed = listing(&r, &registered("POM SI12", "2029-01-01"), day("2026-11-28"));
        assert_eq!(malformed[0].code, ViolationCode::NotRegistered);
        assert_eq!(malformed[0].args["expired"], "none");
        let expired = listing(
            &r,
            &registered("POM SI123456789", "2026-06-30"),
            day("2026-11-28"),
        );
        assert_eq!(expired[0].args["expired"], "2026-06-30");
        assert!(listing(
            &r,
            &registered("POM SI123456789", "2026-11-28"),
            day("2026-11-28")
        )
        .is_empty());
    }

    #[test]
    fn windowed_limits_add_earlier_orders_only_when_history_was_read() {
        let mut r = rules();
        r.registration.clear();
        let p = ProductFacts::default();
        let pid = ProductId(uuid::Uuid::nil());
        let lines = [LineFacts {
            line_id: None,
            product_id: pid,
            product: &p,
            quantity: 3,
            line_total: Money::parse("1000", Currency::IDR).unwrap(),
        }];
        let ids = BTreeMap::new();
        let rates = ExchangeRates::default();
        let at = |d: &str| day(d).and_hms_opt(10, 0, 0).unwrap().and_utc();
        let history = BuyerHistory {
            identifier: "id_nik".into(),
            orders: vec![
                // 91 days before: outside the window.
                PastOrder {
                    created_at: at("2026-08-29"),
                    subtotal: lines[0].line_total,
                    units: vec![(pid, 4)],
                },
                PastOrder {
                    created_at: at("2026-08-30"),
                    subtotal: lines[0].line_total,
                    units: vec![(pid, 4)],
                },
            ],
        };
        let facts = |h| CartFacts {
            country: "ID",
            origin: "KR",
            day: day("2026-11-27"),
            lines: &lines,
            subtotal: lines[0].line_total,
            identifiers: &ids,
            rates: &rates,
            history: h,
        };
        assert!(cart(&r, &facts(None)).is_empty(), "3 units alone are fine");
        let v = cart(&r, &facts(Some(&history)));
        assert_eq!(v.len(), 1);
        // 3 now + 4 on 2026-08-30 (the window's first day); the order of 08-29 is out.
        assert_eq!(v[0].actual, Some(serde_json::json!(7)));
        assert_eq!(v[0].args["window"], "90");
        // One day later the older order is out of the window as well.
        let mut later = facts(Some(&history));
        later.day = day("2026-11-28");
        assert!(cart(&r, &later).is_empty());
    }
}
