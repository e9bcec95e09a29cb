//! A country's rule data: what a plugin ships and an operator may replace.
//!
//! Every rule carries its own validity (`valid_from`, optional `valid_to`, both
//! inclusive calendar dates) and a `source` note, so a change in law is a data edit
//! with a date, not a redeploy, and a decision can be replayed for any day.

use std::collections::BTreeSet;

use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::error::FieldError;
use crate::locale::LocalizedText;
use crate::money::{Currency, Money};

/// When a rule is in force, and where it comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Validity {
    /// First day in force.
    pub valid_from: NaiveDate,
    /// Last day in force; open-ended when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_to: Option<NaiveDate>,
    /// Where the rule comes from (law, guideline, secondary source) and its confidence.
    pub source: String,
}

impl Validity {
    /// Is the rule in force on `day`?
    pub fn in_force(&self, day: NaiveDate) -> bool {
        self.valid_from <= day && self.valid_to.is_none_or(|to| day <= to)
    }
}

/// Something with a validity period.
pub trait Dated {
    /// Its validity.
    fn validity(&self) -> &Validity;
}

macro_rules! dated {
    ($($t:ty),*) => {$(
        impl Dated for $t {
            fn validity(&self) -> &Validity { &self.validity }
        }
    )*};
}

/// Rules of `list` in force on `day`.
pub fn in_force<T: Dated>(list: &[T], day: NaiveDate) -> impl Iterator<Item = &T> {
    list.iter().filter(move |r| r.validity().in_force(day))
}

/// An amount in rule data (`{"amount": "150", "currency": "USD"}`); any number of
/// decimals, since limits are not prices.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleMoney {
    /// Amount.
    #[serde(with = "rust_decimal::serde::str")]
    pub amount: Decimal,
    /// Currency.
    pub currency: Currency,
}

impl From<Money> for RuleMoney {
    fn from(m: Money) -> Self {
        RuleMoney {
            amount: m.amount,
            currency: m.currency,
        }
    }
}

/// A dose amount with its unit (`1000 IU`, `25 mcg`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dose {
    /// Amount.
    #[serde(with = "rust_decimal::serde::str")]
    pub amount: Decimal,
    /// Unit as written on labels: `mg`, `mcg`, `IU`, `g`.
    pub unit: String,
}

/// The destination requires a product registration whose number has this shape.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegistrationRule {
    /// Validity.
    #[serde(flatten)]
    pub validity: Validity,
    /// Who registers (`BPOM`, `NPRA`), for messages.
    pub authority: String,
    /// A regular expression the whole number must match (`^POM SI[0-9]{9}$`).
    pub pattern: String,
    /// An example number, shown in errors.
    pub example: String,
}

/// Halal certification is required to sell; a product declared not halal (`halal:
/// null`) may still be sold when `non_halal_allowed`, with the non-halal statement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HalalRule {
    /// Validity.
    #[serde(flatten)]
    pub validity: Validity,
    /// Whether a declared non-halal product may be sold (with a visible statement).
    pub non_halal_allowed: bool,
}

/// An ingredient that may not be sold as a supplement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IngredientBan {
    /// Validity.
    #[serde(flatten)]
    pub validity: Validity,
    /// Canonical name (`melatonin`), compared case-insensitively.
    pub ingredient: String,
    /// Other names it is sold under (`n-acetyl-5-methoxytryptamine`, `멜라토닌`).
    #[serde(default)]
    pub aliases: Vec<String>,
}

/// A daily-dose cap. `max` lists the same cap in several units (`1000 IU` = `25 mcg`);
/// a product stating its dose in none of them cannot be shown compliant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DoseLimit {
    /// Validity.
    #[serde(flatten)]
    pub validity: Validity,
    /// Canonical ingredient name.
    pub ingredient: String,
    /// Other names.
    #[serde(default)]
    pub aliases: Vec<String>,
    /// The cap per daily dose, in one or more units.
    pub max: Vec<Dose>,
}

/// When a label statement must be shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StatementWhen {
    /// On every product.
    Always,
    /// When the product makes exactly one claim in the page's locale.
    OneClaim,
    /// When it makes more than one.
    SeveralClaims,
    /// When it holds a halal certificate.
    Halal,
    /// When it is declared not halal.
    NonHalal,
}

/// A statement the product page must carry in the destination.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabelStatement {
    /// Validity.
    #[serde(flatten)]
    pub validity: Validity,
    /// Stable key (`dshea_disclaimer`, `hff_mark`, `halal_status`).
    pub key: String,
    /// When it applies.
    pub when: StatementWhen,
    /// Must be shown emphasised (bold), e.g. the US disclaimer.
    #[serde(default)]
    pub emphasis: bool,
    /// Text per locale; `{certificate}` and `{registration}` are replaced.
    pub text: LocalizedText,
}

/// What a quantity limit counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QuantityScope {
    /// Units of each product separately.
    PerProduct,
    /// Units of all products together.
    PerOrder,
}

/// Personal-import quantity limit (import rule: cross-border only).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuantityLimit {
    /// Validity.
    #[serde(flatten)]
    pub validity: Validity,
    /// What is counted.
    pub scope: QuantityScope,
    /// Most units allowed.
    pub max: i64,
    /// Also count the recipient's orders of the last this many days (split orders to
    /// one recipient are added up); none: this order alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window_days: Option<u32>,
}

/// Per-order value limit of a personal import (import rule). Above it the parcel
/// needs a formal declaration the store does not make, so the order is refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ValueLimit {
    /// Validity.
    #[serde(flatten)]
    pub validity: Validity,
    /// Largest order value (goods, before shipping).
    pub max: RuleMoney,
    /// An order of a single unit may exceed it (China's rule for single items).
    #[serde(default)]
    pub single_item_exempt: bool,
    /// Also count the recipient's orders of the last this many days; none: this order
    /// alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window_days: Option<u32>,
}

/// Per-buyer running total over a calendar year (import rule).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnnualLimit {
    /// Validity.
    #[serde(flatten)]
    pub validity: Validity,
    /// Most a buyer may import in a calendar year.
    pub max: RuleMoney,
    /// The buyer identifier kind that identifies the buyer (`cn_resident_id`).
    pub identifier: String,
}

/// The consignee must give one of these identifiers (import rule).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuyerIdRule {
    /// Validity.
    #[serde(flatten)]
    pub validity: Validity,
    /// Accepted kinds, any one suffices (`kr_pccc`; `id_nik`, `id_npwp`, `id_passport`).
    pub any_of: Vec<String>,
}

/// A band of the destination's duties and import taxes on a parcel (landed cost).
/// Bands are matched on the goods value: `above < value <= up_to`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DutyBand {
    /// Validity.
    #[serde(flatten)]
    pub validity: Validity,
    /// Exclusive lower bound; none = from zero.
    #[serde(default)]
    pub above: Option<RuleMoney>,
    /// Inclusive upper bound; none = no upper bound.
    #[serde(default)]
    pub up_to: Option<RuleMoney>,
    /// Customs duty on the goods value.
    #[serde(with = "rust_decimal::serde::str")]
    pub duty_rate: Decimal,
    /// Import VAT / GST / sales tax, on goods value plus duty.
    #[serde(with = "rust_decimal::serde::str")]
    pub import_tax_rate: Decimal,
    /// The seller must collect these taxes at checkout (Singapore's GST on low-value
    /// goods, Malaysia's sales tax): charged in the total, not only estimated.
    #[serde(default)]
    pub collected_by_seller: bool,
    /// Short explanation shown with the estimate.
    pub label: LocalizedText,
}

/// A sales tax / VAT rate on supplements sold in the country (domestic sales).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaxRate {
    /// Validity.
    #[serde(flatten)]
    pub validity: Validity,
    /// Name shown to buyers (`VAT`, `PPN`, `GST`, `消費税`).
    pub name: String,
    /// Rate as a fraction (`0.10`).
    #[serde(with = "rust_decimal::serde::str")]
    pub rate: Decimal,
    /// Shelf prices include the tax (KR, ID, SG, JP); otherwise it is added (US).
    pub prices_include_tax: bool,
}

dated!(
    RegistrationRule,
    HalalRule,
    IngredientBan,
    DoseLimit,
    LabelStatement,
    QuantityLimit,
    ValueLimit,
    AnnualLimit,
    BuyerIdRule,
    DutyBand,
    TaxRate
);

/// Rules that apply only when goods cross the border into the country.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportRules {
    /// Personal-use quantity limits.
    #[serde(default)]
    pub quantity_limits: Vec<QuantityLimit>,
    /// Per-order value limits.
    #[serde(default)]
    pub value_limits: Vec<ValueLimit>,
    /// Per-buyer yearly limits.
    #[serde(default)]
    pub annual_limits: Vec<AnnualLimit>,
    /// Consignee identifiers.
    #[serde(default)]
    pub buyer_identifiers: Vec<BuyerIdRule>,
    /// Duty and import-tax bands for the landed-cost estimate.
    #[serde(default)]
    pub duties: Vec<DutyBand>,
    /// The operator charges duties and import taxes at checkout (delivered duty paid)
    /// instead of the buyer paying them on delivery.
    #[serde(default)]
    pub delivered_duty_paid: bool,
}

/// Everything the engine knows about selling supplements into one country.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CountryRules {
    /// ISO 3166-1 alpha-2 code.
    pub country: String,
    /// Periods in which the store sells into the country.
    pub served: Vec<Validity>,
    /// Product registration (sales rule: applies to domestic and imported goods).
    #[serde(default)]
    pub registration: Vec<RegistrationRule>,
    /// Halal certification (sales rule).
    #[serde(default)]
    pub halal: Vec<HalalRule>,
    /// Banned ingredients (sales rule).
    #[serde(default)]
    pub prohibited_ingredients: Vec<IngredientBan>,
    /// Daily-dose caps (sales rule).
    #[serde(default)]
    pub dose_limits: Vec<DoseLimit>,
    /// Statements the product page must show (sales rule).
    #[serde(default)]
    pub label_statements: Vec<LabelStatement>,
    /// Rules for goods arriving from another country.
    #[serde(default)]
    pub import: ImportRules,
    /// Sales tax / VAT on domestic sales.
    #[serde(default)]
    pub tax: Vec<TaxRate>,
}

fn check_validity(v: &Validity, path: &str, errors: &mut Vec<FieldError>) {
    if v.valid_to.is_some_and(|to| to < v.valid_from) {
        errors.push(FieldError::new(
            format!("{path}.valid_to"),
            "invalid_range",
            "valid_to is before valid_from",
        ));
    }
    if v.source.trim().is_empty() {
        errors.push(FieldError::new(
            format!("{path}.source"),
            "required",
            "every rule needs a source note",
        ));
    }
}

fn check_window(days: Option<u32>, path: &str, errors: &mut Vec<FieldError>) {
    if days.is_some_and(|d| !(1..=366).contains(&d)) {
        errors.push(FieldError::new(
            format!("{path}.window_days"),
            "out_of_range",
            "between 1 and 366 days",
        ));
    }
}

fn check_rate(rate: Decimal, path: String, errors: &mut Vec<FieldError>) {
    if rate.is_sign_negative() || rate > Decimal::ONE {
        errors.push(FieldError::new(
            path,
            "out_of_range",
            "a rate is a fraction between 0 and 1",
        ));
    }
}

/// Two rules of one list that are both in force on the same day would make a decision
/// depend on list order; `key` says which rules compete.
fn check_overlaps<T: Dated>(
    list: &[T],
    key: impl Fn(&T) -> String,
    path: &str,
    errors: &mut Vec<FieldError>,
) {
    for (i, a) in list.iter().enumerate() {
        for (j, b) in list.iter().enumerate().skip(i + 1) {
            if key(a) != key(b) {
                continue;
            }
            let (va, vb) = (a.validity(), b.validity());
            let a_before_b = va.valid_to.is_some_and(|t| t < vb.valid_from);
            let b_before_a = vb.valid_to.is_some_and(|t| t < va.valid_from);
            if !a_before_b && !b_before_a {
                errors.push(FieldError::new(
                    format!("{path}[{j}]"),
                    "overlapping_validity",
                    format!("overlaps {path}[{i}] in time; end one before the other starts"),
                ));
            }
        }
    }
}

/// The duty bands in force on any one day must tile the values they cover: a value in
/// two bands would take its rate from list order, a value between two bands would get
/// no duty estimate (and no tax collected where the seller must collect it). Checked on
/// every day the set of bands in force changes.
fn check_duty_bands(bands: &[DutyBand], errors: &mut Vec<FieldError>) {
    let mut days: BTreeSet<NaiveDate> = BTreeSet::new();
    for b in bands {
        days.insert(b.validity.valid_from);
        days.extend(b.validity.valid_to.and_then(|d| d.succ_opt()));
    }
    // (band, the band it clashes with, code), each reported once.
    let mut found: BTreeSet<(usize, usize, &'static str)> = BTreeSet::new();
    for day in days {
        let mut live: Vec<(usize, &DutyBand)> = bands
            .iter()
            .enumerate()
            .filter(|(_, b)| b.validity.in_force(day))
            .collect();
        // From zero first, then by lower bound.
        live.sort_by_key(|(_, b)| b.above.map(|a| (a.currency.code(), a.amount)));
        for pair in live.windows(2) {
            let ((i, a), (j, b)) = (pair[0], pair[1]);
            let problem = match (a.up_to, b.above) {
                (None, _) | (_, None) => Some("overlapping_values"),
                (Some(u), Some(l)) if u.currency == l.currency => match l.amount.cmp(&u.amount) {
                    std::cmp::Ordering::Less => Some("overlapping_values"),
                    std::cmp::Ordering::Greater => Some("gap_in_values"),
                    std::cmp::Ordering::Equal => None,
                },
                // Bounds in two currencies cannot be compared without a rate.
                _ => None,
            };
            if let Some(code) = problem {
                found.insert((j, i, code));
            }
        }
    }
    for (j, i, code) in found {
        let message = if code == "gap_in_values" {
            format!("starts above where import.duties[{i}] ends, leaving values without a band; start it at that band's up_to")
        } else {
            format!("covers values import.duties[{i}] covers on the same days; end one where the other starts")
        };
        errors.push(FieldError::new(
            format!("import.duties[{j}]"),
            code,
            message,
        ));
    }
}

/// Sales tax periods, once they start, follow one another without a gap: a day
/// between two periods would be sold at no tax at all.
fn check_tax_gaps(tax: &[TaxRate], errors: &mut Vec<FieldError>) {
    let mut periods: Vec<(usize, &Validity)> = tax
        .iter()
        .enumerate()
        .map(|(i, t)| (i, &t.validity))
        .collect();
    periods.sort_by_key(|(_, v)| v.valid_from);
    for pair in periods.windows(2) {
        let ((i, a), (j, b)) = (pair[0], pair[1]);
        if a.valid_to
            .and_then(|d| d.succ_opt())
            .is_some_and(|next| next < b.valid_from)
        {
            errors.push(FieldError::new(
                format!("tax[{j}].valid_from"),
                "gap_in_validity",
                format!("leaves days without tax after tax[{i}] ends; start it the day after"),
            ));
        }
    }
}

impl CountryRules {
    /// Checks rule data before it is put in force: dates, sources, rates, patterns,
    /// overlapping periods. `expected_country` is the code it is stored under.
    pub fn validate(&self, expected_country: &str) -> Vec<FieldError> {
        let mut e = Vec::new();
        if self.country != expected_country {
            e.push(FieldError::new(
                "country",
                "country_mismatch",
                format!(
                    "rules for {} cannot be stored as {expected_country}",
                    self.country
                ),
            ));
        }
        for (i, v) in self.served.iter().enumerate() {
            check_validity(v, &format!("served[{i}]"), &mut e);
        }
        for (i, r) in self.registration.iter().enumerate() {
            let p = format!("registration[{i}]");
            check_validity(&r.validity, &p, &mut e);
            match regex_lite::Regex::new(&r.pattern) {
                Ok(re) if !re.is_match(&r.example) => e.push(FieldError::new(
                    format!("{p}.example"),
                    "pattern_mismatch",
                    "the example does not match the pattern",
                )),
                Ok(_) if r.pattern.len() > 200 => e.push(FieldError::new(
                    format!("{p}.pattern"),
                    "too_long",
                    "at most 200 characters",
                )),
                Ok(_) => {}
                Err(err) => e.push(FieldError::new(
                    format!("{p}.pattern"),
                    "invalid_pattern",
                    err.to_string(),
                )),
            }
        }
        check_overlaps(
            &self.registration,
            |_| String::new(),
            "registration",
            &mut e,
        );
        for (i, r) in self.halal.iter().enumerate() {
            check_validity(&r.validity, &format!("halal[{i}]"), &mut e);
        }
        check_overlaps(&self.halal, |_| String::new(), "halal", &mut e);
        for (i, r) in self.prohibited_ingredients.iter().enumerate() {
            let p = format!("prohibited_ingredients[{i}]");
            check_validity(&r.validity, &p, &mut e);
            if r.ingredient.trim().is_empty() {
                e.push(FieldError::new(
                    format!("{p}.ingredient"),
                    "required",
                    "ingredient name",
                ));
            }
        }
        for (i, r) in self.dose_limits.iter().enumerate() {
            let p = format!("dose_limits[{i}]");
            check_validity(&r.validity, &p, &mut e);
            if r.max.is_empty() || r.max.iter().any(|d| d.amount <= Decimal::ZERO) {
                e.push(FieldError::new(
                    format!("{p}.max"),
                    "out_of_range",
                    "at least one positive amount",
                ));
            }
        }
        check_overlaps(
            &self.dose_limits,
            |r| r.ingredient.to_lowercase(),
            "dose_limits",
            &mut e,
        );
        let mut keys = BTreeSet::new();
        for (i, r) in self.label_statements.iter().enumerate() {
            let p = format!("label_statements[{i}]");
            check_validity(&r.validity, &p, &mut e);
            r.text.validate(&format!("{p}.text"), 2_000, true, &mut e);
            keys.insert(r.key.clone());
        }
        check_overlaps(
            &self.label_statements,
            |r| format!("{}:{:?}", r.key, r.when),
            "label_statements",
            &mut e,
        );
        let imp = &self.import;
        for (i, r) in imp.quantity_limits.iter().enumerate() {
            let p = format!("import.quantity_limits[{i}]");
            check_validity(&r.validity, &p, &mut e);
            check_window(r.window_days, &p, &mut e);
            if r.max < 1 {
                e.push(FieldError::new(
                    format!("{p}.max"),
                    "out_of_range",
                    "at least 1",
                ));
            }
        }
        check_overlaps(
            &imp.quantity_limits,
            |r| format!("{:?}", r.scope),
            "import.quantity_limits",
            &mut e,
        );
        for (i, r) in imp.value_limits.iter().enumerate() {
            let p = format!("import.value_limits[{i}]");
            check_validity(&r.validity, &p, &mut e);
            check_window(r.window_days, &p, &mut e);
            if r.max.amount <= Decimal::ZERO {
                e.push(FieldError::new(
                    format!("{p}.max"),
                    "out_of_range",
                    "must be positive",
                ));
            }
        }
        for (i, r) in imp.annual_limits.iter().enumerate() {
            let p = format!("import.annual_limits[{i}]");
            check_validity(&r.validity, &p, &mut e);
            if r.max.amount <= Decimal::ZERO {
                e.push(FieldError::new(
                    format!("{p}.max"),
                    "out_of_range",
                    "must be positive",
                ));
            }
        }
        for (i, r) in imp.buyer_identifiers.iter().enumerate() {
            let p = format!("import.buyer_identifiers[{i}]");
            check_validity(&r.validity, &p, &mut e);
            if r.any_of.is_empty() {
                e.push(FieldError::new(
                    format!("{p}.any_of"),
                    "required",
                    "at least one kind",
                ));
            }
        }
        for (i, r) in imp.duties.iter().enumerate() {
            let p = format!("import.duties[{i}]");
            check_validity(&r.validity, &p, &mut e);
            check_rate(r.duty_rate, format!("{p}.duty_rate"), &mut e);
            check_rate(r.import_tax_rate, format!("{p}.import_tax_rate"), &mut e);
            if let (Some(a), Some(u)) = (r.above, r.up_to) {
                if a.currency != u.currency || a.amount >= u.amount {
                    e.push(FieldError::new(
                        format!("{p}.up_to"),
                        "invalid_range",
                        "up_to must be above `above`, in the same currency",
                    ));
                }
            }
        }
        for (i, r) in self.tax.iter().enumerate() {
            let p = format!("tax[{i}]");
            check_validity(&r.validity, &p, &mut e);
            check_rate(r.rate, format!("{p}.rate"), &mut e);
        }
        check_overlaps(&self.tax, |_| String::new(), "tax", &mut e);
        check_tax_gaps(&self.tax, &mut e);
        check_duty_bands(&imp.duties, &mut e);
        e
    }

    /// Parses operator-supplied JSON, reporting unknown fields (a misspelt
    /// `valid_too` must not silently make a rule open-ended) and every validation error.
    pub fn from_json(
        value: &serde_json::Value,
        expected_country: &str,
    ) -> Result<CountryRules, Vec<FieldError>> {
        let rules: CountryRules = serde_json::from_value(value.clone())
            .map_err(|e| vec![FieldError::new("rules", "invalid_document", e.to_string())])?;
        let mut errors = Vec::new();
        // Serde's flatten cannot be combined with deny_unknown_fields, so compare the
        // document with what was understood of it.
        let understood = serde_json::to_value(&rules).unwrap_or_default();
        unknown_fields(value, &understood, "", &mut errors);
        errors.extend(rules.validate(expected_country));
        if errors.is_empty() {
            Ok(rules)
        } else {
            Err(errors)
        }
    }
}

/// Paths present in `given` but not in `understood`.
pub(crate) fn unknown_fields(
    given: &serde_json::Value,
    understood: &serde_json::Value,
    path: &str,
    errors: &mut Vec<FieldError>,
) {
    use serde_json::Value;
    match (given, understood) {
        (Value::Object(g), Value::Object(u)) => {
            for (k, v) in g {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                match u.get(k) {
                    Some(uv) => unknown_fields(v, uv, &p, errors),
                    // Optional fields given as null are skipped when serialized.
                    None if v.is_null() => {}
                    None => errors.push(FieldError::new(p, "unknown_field", "unknown field")),
                }
            }
        }
        (Value::Array(g), Value::Array(u)) => {
            for (i, (gv, uv)) in g.iter().zip(u).enumerate() {
                unknown_fields(gv, uv, &format!("{path}[{i}]"), errors);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(from: &str, to: Option<&str>) -> Validity {
        Validity {
            valid_from: from.parse().unwrap(),
            valid_to: to.map(|t| t.parse().unwrap()),
            source: "test".into(),
        }
    }

    #[test]
    fn validity_is_inclusive_at_both_ends() {
        let r = v("2026-10-17", Some("2026-12-31"));
        assert!(!r.in_force("2026-10-16".parse().unwrap()));
        assert!(r.in_force("2026-10-17".parse().unwrap()));
        assert!(r.in_force("2026-12-31".parse().unwrap()));
        assert!(!r.in_force("2027-01-01".parse().unwrap()));
    }

    #[test]
    fn unknown_and_overlapping_fields_are_reported() {
        let doc = serde_json::json!({
            "country": "ID",
            "served": [{"valid_from": "2025-01-01", "source": "ops"}],
            "tax": [
                {"valid_from": "2025-01-01", "source": "a", "name": "PPN", "rate": "0.11", "prices_include_tax": true, "valid_too": "2026-01-01"},
                {"valid_from": "2025-06-01", "source": "b", "name": "PPN", "rate": "0.12", "prices_include_tax": true}
            ]
        });
        let errs = CountryRules::from_json(&doc, "ID").unwrap_err();
        let codes: Vec<_> = errs
            .iter()
            .map(|e| (e.field.as_str(), e.code.as_str()))
            .collect();
        assert!(
            codes.contains(&("tax[0].valid_too", "unknown_field")),
            "{codes:?}"
        );
        assert!(
            codes.contains(&("tax[1]", "overlapping_validity")),
            "{codes:?}"
        );
    }

    /// A duty band: valid from, valid to, above, up to (USD).
    type Band<'a> = (&'a str, Option<&'a str>, Option<&'a str>, Option<&'a str>);

    /// Field and code of every error of a rules document of `ID` with `tax` and
    /// `duties` (each band: validity, above, up_to in USD).
    fn errors_of(tax: serde_json::Value, bands: &[Band<'_>]) -> Vec<(String, String)> {
        let usd = |a: Option<&str>| a.map(|a| serde_json::json!({"amount": a, "currency": "USD"}));
        let duties: Vec<_> = bands
            .iter()
            .map(|(from, to, above, up_to)| {
                serde_json::json!({"valid_from": from, "valid_to": to, "source": "t",
                    "above": usd(*above), "up_to": usd(*up_to), "duty_rate": "0.075",
                    "import_tax_rate": "0.11", "label": {"en": "band"}})
            })
            .collect();
        let doc = serde_json::json!({
            "country": "ID",
            "served": [{"valid_from": "2025-01-01", "source": "ops"}],
            "tax": tax,
            "import": {"duties": duties}
        });
        match CountryRules::from_json(&doc, "ID") {
            Ok(_) => Vec::new(),
            Err(errs) => errs.into_iter().map(|e| (e.field, e.code)).collect(),
        }
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(f, c)| (f.to_string(), c.to_string()))
            .collect()
    }

    #[test]
    fn duty_bands_tile_the_values_on_every_day() {
        let tax = serde_json::json!([]);
        let ok = [
            ("2024-01-01", None, None, Some("3")),
            ("2024-01-01", None, Some("3"), Some("1500")),
        ];
        assert_eq!(errors_of(tax.clone(), &ok), pairs(&[]));
        // A second 3-1,500 band on the same days: which rate applies would be list order.
        let mut twice = ok.to_vec();
        twice.push(("2025-01-01", None, Some("3"), Some("1500")));
        assert_eq!(
            errors_of(tax.clone(), &twice),
            pairs(&[("import.duties[2]", "overlapping_values")])
        );
        // The same band, but only after the first one ended: a successor, fine.
        let successor = [
            ("2024-01-01", None, None, Some("3")),
            ("2024-01-01", Some("2025-12-31"), Some("3"), Some("1500")),
            ("2026-01-01", None, Some("3"), Some("1500")),
        ];
        assert_eq!(errors_of(tax.clone(), &successor), pairs(&[]));
        // Values between 3 and 10 USD in no band.
        let gap = [
            ("2024-01-01", None, None, Some("3")),
            ("2024-01-01", None, Some("10"), Some("1500")),
        ];
        assert_eq!(
            errors_of(tax.clone(), &gap),
            pairs(&[("import.duties[1]", "gap_in_values")])
        );
        // Two open-ended bands from zero.
        let open = [
            ("2024-01-01", None, None, None),
            ("2024-06-01", None, None, None),
        ];
        assert_eq!(
            errors_of(tax, &open),
            pairs(&[("import.duties[1]", "overlapping_values")])
        );
    }

    #[test]
    fn tax_periods_follow_each_other_without_a_gap() {
        let tax = |second_from: &str| {
            serde_json::json!([
                {"valid_from": "2024-01-01", "valid_to": "2026-11-30", "source": "a", "name": "VAT", "rate": "0.1", "prices_include_tax": true},
                {"valid_from": second_from, "source": "b", "name": "VAT", "rate": "0.1", "prices_include_tax": true}
            ])
        };
        assert_eq!(errors_of(tax("2026-12-01"), &[]), pairs(&[]));
        assert_eq!(
            errors_of(tax("2026-12-10"), &[]),
            pairs(&[("tax[1].valid_from", "gap_in_validity")])
        );
    }

    #[test]
    fn bad_patterns_and_rates_are_reported() {
        let doc = serde_json::json!({
            "country": "MY",
            "served": [{"valid_from": "2025-01-01", "source": "ops"}],
            "registration": [{"valid_from": "2020-01-01", "source": "NPRA", "authority": "NPRA", "pattern": "^MAL[0-9{8}", "example": "MAL12345678N"}],
            "tax": [{"valid_from": "2024-01-01", "source": "x", "name": "SST", "rate": "10", "prices_include_tax": true}]
        });
        let errs = CountryRules::from_json(&doc, "SG").unwrap_err();
        let codes: Vec<_> = errs.iter().map(|e| e.code.as_str()).collect();
        assert!(codes.contains(&"invalid_pattern"), "{codes:?}");
        assert!(codes.contains(&"out_of_range"), "{codes:?}");
        assert!(codes.contains(&"country_mismatch"), "{codes:?}");
    }
}
