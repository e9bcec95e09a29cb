//! The storage contract suite: one set of checks every [`Store`] implementation must
//! pass (SQLite now, PostgreSQL and plugin authors' stores later).
//!
//! Use [`storage_contract_tests!`](crate::storage_contract_tests) in the adapter's tests
//! with an expression that builds a fresh, empty store; it expands to one `#[tokio::test]`
//! per check so failures name the broken behaviour.

#![allow(missing_docs)]

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{Duration, Utc};

use crate::cart::{Address, Cart, CartStatus, LineItem, Totals};
use crate::catalog::{
    Category, Cursor, Product, ProductQuery, ProductSort, ProductStatus, Variant,
};
use crate::clock::{Clock, SystemClock};
use crate::compliance::product::{HalalCertificate, Ingredient, Registration};
use crate::compliance::{CountryData, ProductFacts};
use crate::customer::{Customer, RefreshToken, Role};
use crate::events::DomainEvent;
use crate::ids::EventId;
use crate::ids::{CartId, CustomerId, LineId, OrderId, ProductId, VariantId};
use crate::locale::LocalizedText;
use crate::money::{Currency, Money};
use crate::order::{
    Actor, Order, OrderLine, OrderQuery, OrderStatus, PaymentInfo, PaymentStatus, StatusChange,
};
use crate::ports::{
    AuditEntry, IdempotencyRecord, NotificationRecord, RuleDocument, SalesRow, Store,
};
use crate::CoreError;

fn now() -> chrono::DateTime<Utc> {
    SystemClock.now()
}

fn text(pairs: &[(&str, &str)]) -> LocalizedText {
    LocalizedText(
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    )
}

/// A published product with one variant per `(sku, krw, stock)`.
pub fn product(handle: &str, title: &[(&str, &str)], variants: &[(&str, i64, i64)]) -> Product {
    let now = now();
    Product {
        id: ProductId::new(),
        handle: handle.to_string(),
        status: ProductStatus::Published,
        title: text(title),
        description: text(&[("en", "A supplement")]),
        categories: vec![],
        media: vec![],
        facts: ProductFacts::default(),
        variants: variants
            .iter()
            .map(|(sku, krw, stock)| Variant {
                id: VariantId::new(),
                sku: sku.to_string(),
                options: BTreeMap::new(),
                prices: vec![Money::from_minor(*krw, Currency::KRW).unwrap()],
                stock: *stock,
            })
            .collect(),
        created_at: now,
        updated_at: now,
    }
}

/// The stored product `id`, which must exist.
async fn stored_product(store: &Arc<dyn Store>, id: ProductId) -> Product {
    store
        .read()
        .await
        .unwrap()
        .product(id)
        .await
        .unwrap()
        .unwrap()
}

async fn insert(store: &Arc<dyn Store>, p: &Product) {
    let mut tx = store.begin().await.unwrap();
    tx.insert_product(p).await.unwrap();
    tx.commit().await.unwrap();
}

fn query() -> ProductQuery {
    ProductQuery {
        limit: 100,
        ..Default::default()
    }
}

async fn handles(store: &Arc<dyn Store>, q: ProductQuery) -> Vec<String> {
    let page = store.read().await.unwrap().products(&q).await.unwrap();
    page.products.into_iter().map(|p| p.handle).collect()
}

pub async fn products_round_trip(store: Arc<dyn Store>) {
    let mut p = product(
        "red-ginseng",
        &[("ko", "홍삼"), ("en", "Red ginseng")],
        &[("RG-30", 39000, 10), ("RG-60", 70000, 5)],
    );
    p.categories = vec!["ginseng".into()];
    p.variants[0]
        .prices
        .push(Money::parse("29.90", Currency::USD).unwrap());
    p.variants[0].options.insert("size".into(), "30".into());
    insert(&store, &p).await;
    let mut r = store.read().await.unwrap();
    let by_id = r.product(p.id).await.unwrap().expect("by id");
    let by_handle = r
        .product_by_handle("red-ginseng")
        .await
        .unwrap()
        .expect("by handle");
    assert_eq!(by_id.id, p.id);
    assert_eq!(by_handle.id, p.id);
    assert_eq!(by_id.variants.len(), 2);
    assert_eq!(by_id.variants[0].sku, "RG-30", "variants keep their order");
    let mut got = by_id.variants[0].prices.clone();
    let mut want = p.variants[0].prices.clone();
    got.sort_by_key(|m| m.currency);
    want.sort_by_key(|m| m.currency);
    assert_eq!(got, want);
    assert_eq!(by_id.variants[0].options, p.variants[0].options);
    assert_eq!(by_id.title, p.title);
    assert_eq!(by_id.categories, p.categories);
    assert_eq!(
        by_id.facts,
        ProductFacts::default(),
        "no facts read as empty"
    );
    assert!(r.product(ProductId::new()).await.unwrap().is_none());
    let snaps = r
        .variants(&[p.variants[1].id, VariantId::new()])
        .await
        .unwrap();
    assert_eq!(snaps.len(), 1, "unknown variant ids are left out");
    assert_eq!(snaps[0].variant.stock, 5);
    assert_eq!(snaps[0].product_id, p.id);
    assert_eq!(*snaps[0].facts, ProductFacts::default());
}

/// A hundred products read at once (a full listing page, a cart of `MAX_LINES` lines):
/// every variant comes back once, with its own product's data and its variants in
/// order, however the store splits the ids into statements.
pub async fn a_hundred_products_read_at_once(store: Arc<dyn Store>) {
    let mut made = Vec::new();
    for i in 0..100 {
        let p = product(
            &format!("bulk-{i:03}"),
            &[("en", "Bulk")],
            &[
                (&format!("B{i:03}-A"), 1000 + i, i),
                (&format!("B{i:03}-B"), 2000 + i, 1),
            ],
        );
        insert(&store, &p).await;
        made.push(p);
    }
    let mut r = store.read().await.unwrap();
    let page = r.products(&query()).await.unwrap();
    assert_eq!(page.products.len(), 100);
    for p in &page.products {
        let want = made
            .iter()
            .find(|m| m.id == p.id)
            .expect("a product made here");
        let skus: Vec<_> = p.variants.iter().map(|v| v.sku.as_str()).collect();
        let want_skus: Vec<_> = want.variants.iter().map(|v| v.sku.as_str()).collect();
        assert_eq!(skus, want_skus, "{}: its own variants, in order", p.handle);
    }
    // One variant of each product, the first id repeated and an unknown one added.
    let mut ids: Vec<VariantId> = made.iter().map(|p| p.variants[0].id).collect();
    ids.push(ids[0]);
    ids.push(VariantId::new());
    let snaps = r.variants(&ids).await.unwrap();
    assert_eq!(snaps.len(), 100, "each known variant once");
    for p in &made {
        let s = snaps
            .iter()
            .find(|s| s.variant.id == p.variants[0].id)
            .unwrap_or_else(|| panic!("{} missing", p.variants[0].sku));
        assert_eq!(s.product_id, p.id);
        assert_eq!(s.variant.stock, p.variants[0].stock);
        assert_eq!(s.variant.prices, p.variants[0].prices);
    }
    // Three ids, padded in PostgreSQL to four placeholders: still three rows.
    let snaps = r.variants(&ids[..3]).await.unwrap();
    assert_eq!(snaps.len(), 3);
}

fn date(y: i32, m: u32, d: u32) -> chrono::NaiveDate {
    chrono::NaiveDate::from_ymd_opt(y, m, d).unwrap()
}

fn strings(pairs: &[(&str, &[&str])]) -> BTreeMap<String, Vec<String>> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.iter().map(|s| s.to_string()).collect()))
        .collect()
}

/// Facts with every shape a country may take: registration with halal declared absent
/// (`null`), a certificate with label statements, plugin-defined fields, and nothing.
pub fn sample_facts() -> ProductFacts {
    let mut countries = BTreeMap::new();
    countries.insert(
        "ID".to_string(),
        CountryData {
            registration: Some(Registration {
                number: "POM SI 123456789".into(),
                holder: "PT Hanbit Indonesia".into(),
                expires_on: date(2028, 3, 31),
            }),
            halal: Some(None),
            hs_code: Some("2106.90.71".into()),
            ..Default::default()
        },
    );
    countries.insert(
        "MY".to_string(),
        CountryData {
            halal: Some(Some(HalalCertificate {
                certificate_number: "JAKIM-1234-5678".into(),
                issuer: "JAKIM".into(),
                expires_on: date(2027, 12, 31),
            })),
            label_statements: strings(&[
                ("ms", &["Suplemen makanan", "Diimport oleh Hanbit Sdn Bhd"]),
                ("en", &["Food supplement"]),
            ]),
            ..Default::default()
        },
    );
    countries.insert(
        "KR".to_string(),
        CountryData {
            extra: [("ad_review_id".to_string(), serde_json::json!("2025-0123"))]
                .into_iter()
                .collect(),
            ..Default::default()
        },
    );
    countries.insert("SG".to_string(), CountryData::default());
    ProductFacts {
        countries,
        ingredients: vec![
            Ingredient {
                name: "Ginsenoside Rg1+Rb1+Rg3".into(),
                amount: "12.50".parse().unwrap(),
                unit: "mg".into(),
            },
            Ingredient {
                name: "Vitamin D3".into(),
                amount: "1000".parse().unwrap(),
                unit: "IU".into(),
            },
        ],
        claims: strings(&[
            ("en", &["Supports immune function"]),
            ("ko", &["면역력 증진에 도움을 줄 수 있음", "피로 개선"]),
        ]),
    }
}

pub async fn product_facts_round_trip(store: Arc<dyn Store>) {
    let mut p = product(
        "facts",
        &[("en", "Red ginseng")],
        &[("F-30", 39000, 10), ("F-60", 70000, 5)],
    );
    p.facts = sample_facts();
    let plain = product("plain", &[("en", "Plain")], &[("PL-1", 1000, 1)]);
    insert(&store, &p).await;
    insert(&store, &plain).await;

    let mut r = store.read().await.unwrap();
    let by_id = r.product(p.id).await.unwrap().unwrap();
    assert_eq!(by_id.facts, p.facts, "by id");
    assert_eq!(
        by_id.facts.countries["ID"].halal,
        Some(None),
        "halal: null stays declared"
    );
    assert_eq!(
        by_id.facts.countries["SG"].halal, None,
        "absent stays unknown"
    );
    let by_handle = r.product_by_handle("facts").await.unwrap().unwrap();
    assert_eq!(by_handle.facts, p.facts, "by handle");
    let page = r.products(&query()).await.unwrap();
    let listed = page.products.iter().find(|x| x.id == p.id).unwrap();
    assert_eq!(listed.facts, p.facts, "in a products page");
    let other = page.products.iter().find(|x| x.id == plain.id).unwrap();
    assert_eq!(other.facts, ProductFacts::default());
    let snaps = r
        .variants(&[p.variants[0].id, plain.variants[0].id, p.variants[1].id])
        .await
        .unwrap();
    assert_eq!(snaps.len(), 3);
    let mine: Vec<_> = snaps.iter().filter(|s| s.product_id == p.id).collect();
    assert_eq!(mine.len(), 2);
    assert_eq!(*mine[0].facts, p.facts, "in a variant snapshot");
    assert!(
        Arc::ptr_eq(&mine[0].facts, &mine[1].facts),
        "variants of one product share its facts"
    );
    let theirs = snaps.iter().find(|s| s.product_id == plain.id).unwrap();
    assert_eq!(*theirs.facts, ProductFacts::default());
    drop(r);

    // An update replaces the facts; reads in the writing transaction see the change.
    let mut next = p.clone();
    next.facts.countries.remove("MY");
    next.facts.countries.get_mut("ID").unwrap().label_statements =
        strings(&[("id", &["Suplemen kesehatan"])]);
    next.facts.ingredients.truncate(1);
    next.facts.claims.remove("en");
    let mut tx = store.begin().await.unwrap();
    tx.update_product(&next).await.unwrap();
    assert_eq!(tx.product(p.id).await.unwrap().unwrap().facts, next.facts);
    tx.commit().await.unwrap();
    let mut r = store.read().await.unwrap();
    assert_eq!(r.product(p.id).await.unwrap().unwrap().facts, next.facts);
    let snaps = r.variants(&[p.variants[1].id]).await.unwrap();
    assert_eq!(*snaps[0].facts, next.facts);
    drop(r);

    // Facts can be cleared again.
    let mut cleared = next.clone();
    cleared.facts = ProductFacts::default();
    let mut tx = store.begin().await.unwrap();
    tx.update_product(&cleared).await.unwrap();
    tx.commit().await.unwrap();
    let got = store
        .read()
        .await
        .unwrap()
        .product_by_handle("facts")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.facts, ProductFacts::default());
}

pub async fn duplicates_are_conflicts(store: Arc<dyn Store>) {
    insert(&store, &product("a", &[("en", "A")], &[("SKU-A", 100, 1)])).await;
    let mut tx = store.begin().await.unwrap();
    let err = tx
        .insert_product(&product("a", &[("en", "A2")], &[("SKU-B", 100, 1)]))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            CoreError::Conflict {
                code: "handle_taken",
                ..
            }
        ),
        "{err:?}"
    );
    drop(tx);
    let mut tx = store.begin().await.unwrap();
    let err = tx
        .insert_product(&product("b", &[("en", "B")], &[("SKU-A", 100, 1)]))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            CoreError::Conflict {
                code: "sku_taken",
                ..
            }
        ),
        "{err:?}"
    );
}

/// Two variants of a product may swap SKUs in one update (uniqueness holds for the
/// result, not for each row on the way); a SKU of another product is still refused.
pub async fn variants_may_swap_skus(store: Arc<dyn Store>) {
    let p = product(
        "swap",
        &[("en", "Swap")],
        &[("SW-A", 100, 1), ("SW-B", 200, 2)],
    );
    insert(&store, &p).await;
    insert(
        &store,
        &product("other", &[("en", "Other")], &[("OT-1", 100, 1)]),
    )
    .await;
    let mut next = p.clone();
    next.variants[0].sku = "SW-B".into();
    next.variants[1].sku = "SW-A".into();
    let mut tx = store.begin().await.unwrap();
    tx.update_product(&next).await.unwrap();
    tx.commit().await.unwrap();
    let got = stored_product(&store, p.id).await;
    let skus: Vec<_> = got
        .variants
        .iter()
        .map(|v| (v.id, v.sku.as_str()))
        .collect();
    assert_eq!(
        skus,
        [(p.variants[0].id, "SW-B"), (p.variants[1].id, "SW-A")]
    );
    next.variants[1].sku = "OT-1".into();
    let mut tx = store.begin().await.unwrap();
    match tx.update_product(&next).await {
        Err(CoreError::Conflict {
            code: "sku_taken", ..
        }) => {}
        other => panic!("another product's SKU must be refused, got {other:?}"),
    }
}

pub async fn update_keeps_variant_ids_and_delete_removes(store: Arc<dyn Store>) {
    let p = product("p", &[("en", "Old")], &[("S1", 100, 1), ("S2", 200, 2)]);
    insert(&store, &p).await;
    let mut next = p.clone();
    next.title = text(&[("en", "New title")]);
    next.variants.remove(1);
    next.variants[0].stock = 9;
    let mut tx = store.begin().await.unwrap();
    tx.update_product(&next).await.unwrap();
    tx.commit().await.unwrap();
    let got = stored_product(&store, p.id).await;
    assert_eq!(got.variants.len(), 1);
    assert_eq!(got.variants[0].id, p.variants[0].id);
    assert_eq!(got.variants[0].stock, 9);
    let q = ProductQuery {
        terms: vec!["new title".into()],
        ..query()
    };
    assert!(handles(
        &store,
        ProductQuery {
            terms: vec!["title".into()],
            ..query()
        }
    )
    .await
    .contains(&"p".to_string()));
    assert_eq!(
        handles(
            &store,
            ProductQuery {
                terms: vec!["old".into()],
                ..query()
            }
        )
        .await,
        Vec::<String>::new()
    );
    let _ = q;
    let mut tx = store.begin().await.unwrap();
    assert!(tx.delete_product(p.id).await.unwrap());
    assert!(!tx.delete_product(p.id).await.unwrap());
    tx.commit().await.unwrap();
    assert!(store
        .read()
        .await
        .unwrap()
        .product(p.id)
        .await
        .unwrap()
        .is_none());
    assert!(handles(
        &store,
        ProductQuery {
            terms: vec!["title".into()],
            ..query()
        }
    )
    .await
    .is_empty());
}

pub async fn search_finds_korean_english_and_indonesian(store: Arc<dyn Store>) {
    insert(
        &store,
        &product(
            "stick",
            &[("ko", "한빛 홍삼정 스틱"), ("en", "Red Ginseng Stick")],
            &[("S1", 100, 1)],
        ),
    )
    .await;
    insert(
        &store,
        &product(
            "extract",
            &[("ko", "홍삼농축액 골드"), ("id", "Ekstrak Ginseng Merah")],
            &[("S2", 100, 1)],
        ),
    )
    .await;
    insert(
        &store,
        &product(
            "probiotic",
            &[("ko", "유산균 플러스"), ("id", "Probiotik Plus")],
            &[("S3", 100, 1)],
        ),
    )
    .await;
    let find = |terms: &[&str]| ProductQuery {
        terms: terms.iter().map(|t| t.to_lowercase()).collect(),
        sort: ProductSort::Handle,
        ..query()
    };
    assert_eq!(
        handles(&store, find(&["홍삼"])).await,
        vec!["extract", "stick"],
        "two-syllable Korean word"
    );
    assert_eq!(handles(&store, find(&["스틱"])).await, vec!["stick"]);
    assert_eq!(
        handles(&store, find(&["농축"])).await,
        vec!["extract"],
        "inside a compound"
    );
    assert_eq!(
        handles(&store, find(&["유산균"])).await,
        vec!["probiotic"],
        "three syllables"
    );
    assert_eq!(
        handles(&store, find(&["홍삼", "스틱"])).await,
        vec!["stick"],
        "every term must match"
    );
    assert_eq!(
        handles(&store, find(&["GINSENG"])).await,
        vec!["extract", "stick"],
        "case-insensitive"
    );
    assert_eq!(
        handles(&store, find(&["gin"])).await,
        vec!["extract", "stick"],
        "prefix"
    );
    assert_eq!(
        handles(&store, find(&["probiotik"])).await,
        vec!["probiotic"],
        "Indonesian"
    );
    assert_eq!(
        handles(&store, find(&["s3"])).await,
        vec!["probiotic"],
        "SKU"
    );
    for hostile in [
        "\"",
        "' OR 1=1 --",
        "%",
        "_",
        "*",
        "NEAR(a b)",
        "\"홍삼\" OR \"x\"",
        "\\",
        "ginseng\"); DROP TABLE products; --",
    ] {
        let got = handles(&store, find(&[hostile])).await;
        assert!(
            got.is_empty(),
            "{hostile:?} matched literally nothing, got {got:?}"
        );
    }
    assert_eq!(handles(&store, find(&[])).await.len(), 3);
}

pub async fn filters_sorts_and_pages(store: Arc<dyn Store>) {
    for (i, price) in [5000, 1000, 3000, 2000, 4000].iter().enumerate() {
        let mut p = product(
            &format!("p{i}"),
            &[("en", "Vitamin")],
            &[(&format!("V{i}"), *price, 1)],
        );
        p.categories = vec![if i % 2 == 0 {
            "even".into()
        } else {
            "odd".into()
        }];
        p.created_at = now() + Duration::milliseconds(i as i64);
        insert(&store, &p).await;
    }
    let mut usd_only = product("usd-only", &[("en", "Vitamin")], &[("U1", 100, 1)]);
    usd_only.created_at = now() + Duration::seconds(1);
    usd_only.variants[0].prices = vec![Money::parse("9.99", Currency::USD).unwrap()];
    insert(&store, &usd_only).await;
    let mut draft = product("draft", &[("en", "Vitamin")], &[("D1", 100, 1)]);
    draft.status = ProductStatus::Draft;
    insert(&store, &draft).await;

    let krw = |sort| ProductQuery {
        currency: Some(Currency::KRW),
        sort,
        ..query()
    };
    assert_eq!(
        handles(&store, krw(ProductSort::PriceAsc)).await,
        vec!["p1", "p3", "p2", "p4", "p0"]
    );
    assert_eq!(
        handles(&store, krw(ProductSort::PriceDesc)).await,
        vec!["p0", "p4", "p2", "p3", "p1"]
    );
    assert_eq!(
        handles(
            &store,
            ProductQuery {
                sort: ProductSort::Newest,
                ..query()
            }
        )
        .await[0],
        "usd-only"
    );
    let ranged = ProductQuery {
        min_price_minor: Some(2000),
        max_price_minor: Some(4000),
        ..krw(ProductSort::PriceAsc)
    };
    assert_eq!(handles(&store, ranged).await, vec!["p3", "p2", "p4"]);
    let odd = ProductQuery {
        category: Some("odd".into()),
        ..krw(ProductSort::Handle)
    };
    assert_eq!(handles(&store, odd).await, vec!["p1", "p3"]);
    assert!(
        !handles(&store, query())
            .await
            .contains(&"draft".to_string()),
        "drafts are hidden"
    );
    let admin = ProductQuery {
        include_drafts: true,
        ..query()
    };
    assert!(handles(&store, admin.clone())
        .await
        .contains(&"draft".to_string()));
    let only_drafts = ProductQuery {
        status: Some(ProductStatus::Draft),
        ..admin
    };
    assert_eq!(handles(&store, only_drafts).await, vec!["draft"]);

    // Walking every sort two at a time visits every product exactly once.
    for sort in [
        ProductSort::Newest,
        ProductSort::Handle,
        ProductSort::PriceAsc,
        ProductSort::PriceDesc,
    ] {
        let mut seen = Vec::new();
        let mut after: Option<Cursor> = None;
        loop {
            let q = ProductQuery {
                limit: 2,
                after: after.clone(),
                ..krw(sort)
            };
            let page = store.read().await.unwrap().products(&q).await.unwrap();
            seen.extend(page.products.iter().map(|p| p.handle.clone()));
            match page.next {
                Some(c) => after = Some(c),
                None => break,
            }
            assert!(
                seen.len() <= 5,
                "pagination does not terminate for {sort:?}"
            );
        }
        assert_eq!(seen, handles(&store, krw(sort)).await, "{sort:?}");
    }
}

pub async fn stock_never_goes_negative(store: Arc<dyn Store>) {
    let p = product("s", &[("en", "S")], &[("S", 100, 3)]);
    insert(&store, &p).await;
    let v = p.variants[0].id;
    let mut tx = store.begin().await.unwrap();
    assert_eq!(tx.take_stock(v, 2).await.unwrap(), Some(1));
    assert_eq!(tx.take_stock(v, 2).await.unwrap(), None, "not enough left");
    assert_eq!(tx.take_stock(v, 1).await.unwrap(), Some(0));
    assert_eq!(
        tx.take_stock(VariantId::new(), 1).await.unwrap(),
        None,
        "unknown variant"
    );
    tx.return_stock(v, 5).await.unwrap();
    tx.return_stock(VariantId::new(), 5).await.unwrap();
    tx.commit().await.unwrap();
    let got = stored_product(&store, p.id).await;
    assert_eq!(got.variants[0].stock, 5);
}

pub async fn concurrent_reservations_are_exact(store: Arc<dyn Store>) {
    let p = product("hot", &[("en", "Hot")], &[("HOT", 100, 10)]);
    insert(&store, &p).await;
    let v = p.variants[0].id;
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut tx = store.begin().await.unwrap();
                let got = tx.take_stock(v, 1).await.unwrap();
                tx.commit().await.unwrap();
                got.is_some()
            })
        })
        .collect();
    let mut won = 0;
    for t in tasks {
        won += usize::from(t.await.unwrap());
    }
    assert_eq!(won, 10);
    let got = stored_product(&store, p.id).await;
    assert_eq!(got.variants[0].stock, 0);
}

pub async fn dropped_transactions_roll_back(store: Arc<dyn Store>) {
    let p = product("ghost", &[("en", "Ghost")], &[("G", 100, 1)]);
    {
        let mut tx = store.begin().await.unwrap();
        tx.insert_product(&p).await.unwrap();
        tx.append_events(&[DomainEvent::new(
            "product.created",
            "product",
            p.id,
            now(),
            serde_json::json!({}),
        )])
        .await
        .unwrap();
    }
    assert!(store
        .read()
        .await
        .unwrap()
        .product(p.id)
        .await
        .unwrap()
        .is_none());
    assert!(store.outbox_pending(10).await.unwrap().is_empty());
    // The store is still usable after a rollback.
    insert(&store, &p).await;
}

fn cart(expires_in: Duration) -> Cart {
    let now = now();
    Cart {
        id: CartId::new(),
        country: "KR".into(),
        currency: Currency::KRW,
        locale: "ko".into(),
        customer_id: None,
        email: Some("a@b.co".into()),
        shipping_address: None,
        buyer_identifiers: BTreeMap::new(),
        lines: vec![LineItem {
            id: LineId::new(),
            variant_id: VariantId::new(),
            quantity: 2,
        }],
        status: CartStatus::Open,
        order_id: None,
        created_at: now,
        updated_at: now,
        expires_at: now + expires_in,
    }
}

pub async fn carts_round_trip_and_expire(store: Arc<dyn Store>) {
    let live = cart(Duration::hours(1));
    let dead = cart(Duration::hours(-1));
    let mut done = cart(Duration::hours(-1));
    done.status = CartStatus::Completed;
    let mut tx = store.begin().await.unwrap();
    for c in [&live, &dead, &done] {
        tx.save_cart(c).await.unwrap();
    }
    tx.commit().await.unwrap();
    let mut changed = live.clone();
    changed.lines[0].quantity = 5;
    let mut tx = store.begin().await.unwrap();
    tx.save_cart(&changed).await.unwrap();
    assert_eq!(
        tx.delete_expired_carts(now()).await.unwrap(),
        1,
        "only open expired carts go"
    );
    tx.commit().await.unwrap();
    let mut r = store.read().await.unwrap();
    assert_eq!(r.cart(live.id).await.unwrap().unwrap(), changed);
    assert!(r.cart(dead.id).await.unwrap().is_none());
    assert!(
        r.cart(done.id).await.unwrap().is_some(),
        "completed carts stay with their order"
    );
}

/// Checkout's first read: the cart with the snapshots of its lines' variants, unknown
/// variants left out, the cart itself as saved, nothing for a missing cart.
pub async fn cart_for_checkout_reads_cart_and_variants(store: Arc<dyn Store>) {
    let a = product(
        "checkout-a",
        &[("en", "A")],
        &[("CA-1", 1000, 7), ("CA-2", 2000, 3)],
    );
    let b = product("checkout-b", &[("en", "B")], &[("CB-1", 3000, 5)]);
    insert(&store, &a).await;
    insert(&store, &b).await;
    let mut full = cart(Duration::hours(1));
    full.lines = [a.variants[1].id, b.variants[0].id, VariantId::new()]
        .into_iter()
        .map(|variant_id| LineItem {
            id: LineId::new(),
            variant_id,
            quantity: 1,
        })
        .collect();
    let mut empty = cart(Duration::hours(1));
    empty.lines.clear();
    let mut tx = store.begin().await.unwrap();
    tx.save_cart(&full).await.unwrap();
    tx.save_cart(&empty).await.unwrap();
    tx.commit().await.unwrap();

    let mut tx = store.begin().await.unwrap();
    let (got, snaps) = tx
        .cart_for_checkout(full.id)
        .await
        .unwrap()
        .expect("the cart");
    assert_eq!(got, full);
    let mut skus: Vec<_> = snaps.iter().map(|s| s.variant.sku.as_str()).collect();
    skus.sort();
    assert_eq!(
        skus,
        ["CA-2", "CB-1"],
        "the lines' known variants, each once"
    );
    let cb = snaps.iter().find(|s| s.variant.sku == "CB-1").unwrap();
    assert_eq!(cb.product_id, b.id);
    assert_eq!(cb.variant.stock, 5);
    assert_eq!(cb.variant.prices, b.variants[0].prices);
    let (got, snaps) = tx
        .cart_for_checkout(empty.id)
        .await
        .unwrap()
        .expect("the empty cart");
    assert_eq!(got, empty);
    assert!(snaps.is_empty());
    assert!(tx.cart_for_checkout(CartId::new()).await.unwrap().is_none());
}

/// A pending order for tests.
pub fn order(customer: Option<CustomerId>, status: OrderStatus, expires_in: Duration) -> Order {
    let now = now();
    let id = OrderId::new();
    let price = Money::from_minor(1000, Currency::KRW).unwrap();
    Order {
        id,
        number: format!("T-{id}"),
        cart_id: CartId::new(),
        customer_id: customer,
        email: "a@b.co".into(),
        status,
        country: "KR".into(),
        currency: Currency::KRW,
        locale: "ko".into(),
        lines: vec![OrderLine {
            variant_id: VariantId::new(),
            product_id: ProductId::new(),
            sku: "S".into(),
            title: "홍삼".into(),
            quantity: 1,
            unit_price: price,
            line_total: price,
            tax: None,
        }],
        totals: Totals {
            subtotal: price,
            shipping: Money::zero(Currency::KRW),
            tax: Money::zero(Currency::KRW),
            tax_included: false,
            duties: None,
            total: price,
        },
        shipping_address: Address {
            name: "김".into(),
            line1: "1".into(),
            city: "Seoul".into(),
            postal_code: "04524".into(),
            country: "KR".into(),
            ..Default::default()
        },
        payment: PaymentInfo {
            provider: "manual".into(),
            reference: None,
            status: PaymentStatus::Pending,
            amount: price,
            failure_code: None,
            late_references: Vec::new(),
        },
        fulfillment: None,
        history: vec![StatusChange {
            from: None,
            to: status,
            at: now,
            actor: Actor::System,
            reason: None,
        }],
        guest_token_hash: None,
        payment_expires_at: Some(now + expires_in),
        buyer_identifiers: BTreeMap::new(),
        buyer_key: None,
        created_at: now,
        updated_at: now,
    }
}

pub async fn orders_round_trip_list_and_expire(store: Arc<dyn Store>) {
    let alice = CustomerId::new();
    let a1 = order(Some(alice), OrderStatus::Pending, Duration::minutes(-5));
    let a2 = order(Some(alice), OrderStatus::Paid, Duration::minutes(30));
    let b1 = order(None, OrderStatus::Pending, Duration::minutes(30));
    let mut tx = store.begin().await.unwrap();
    for o in [&a1, &a2, &b1] {
        tx.insert_order(o).await.unwrap();
    }
    tx.commit().await.unwrap();
    let mut r = store.read().await.unwrap();
    assert_eq!(r.order(a1.id).await.unwrap().unwrap(), a1);
    let mine = r
        .orders(&OrderQuery {
            customer_id: Some(alice),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        mine.iter().map(|o| o.id).collect::<Vec<_>>(),
        vec![a2.id, a1.id],
        "newest first"
    );
    let older = r
        .orders(&OrderQuery {
            customer_id: Some(alice),
            limit: 10,
            before: Some(a2.id),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(older.iter().map(|o| o.id).collect::<Vec<_>>(), vec![a1.id]);
    let pending = r
        .orders(&OrderQuery {
            status: Some(OrderStatus::Pending),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(pending.len(), 2);
    assert_eq!(
        r.expired_pending_orders(now(), 10).await.unwrap(),
        vec![a1.id]
    );
    drop(r);
    let mut changed = a1.clone();
    changed
        .transition(
            OrderStatus::Canceled,
            Actor::System,
            Some("expired".into()),
            now(),
        )
        .unwrap();
    changed.payment_expires_at = None;
    let mut tx = store.begin().await.unwrap();
    assert!(tx
        .update_order_if(&changed, OrderStatus::Pending)
        .await
        .unwrap());
    assert!(
        !tx.update_order_if(
            &order(None, OrderStatus::Paid, Duration::minutes(1)),
            OrderStatus::Paid
        )
        .await
        .unwrap(),
        "unknown order"
    );
    tx.commit().await.unwrap();
    // A conditional update writes only over the expected status.
    let mut paid = b1.clone();
    paid.transition(OrderStatus::Paid, Actor::System, None, now())
        .unwrap();
    let mut tx = store.begin().await.unwrap();
    assert!(
        !tx.update_order_if(&paid, OrderStatus::Paid).await.unwrap(),
        "b1 is pending, not paid"
    );
    assert!(tx
        .update_order_if(&paid, OrderStatus::Pending)
        .await
        .unwrap());
    assert!(
        !tx.update_order_if(&paid, OrderStatus::Pending)
            .await
            .unwrap(),
        "already moved on"
    );
    tx.commit().await.unwrap();
    let mut r = store.read().await.unwrap();
    assert_eq!(
        r.order(b1.id).await.unwrap().unwrap().status,
        OrderStatus::Paid
    );
    assert!(r
        .expired_pending_orders(now(), 10)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(r.order(a1.id).await.unwrap().unwrap().history.len(), 2);
}

/// A staff account's role, password and disabled mark are stored and read back; its
/// refresh tokens are revoked all at once, and only its own.
pub async fn staff_accounts_change_and_lose_their_tokens(store: Arc<dyn Store>) {
    let staff = |email: &str| Customer {
        id: CustomerId::new(),
        email: email.into(),
        password_hash: "h1".into(),
        role: Role::Admin,
        created_at: now(),
        disabled_at: None,
        session_version: 0,
    };
    let (leaver, other) = (staff("leaver@shop.kr"), staff("stays@shop.kr"));
    let token = |hash: &str, family: &str, owner: &Customer| RefreshToken {
        token_hash: hash.into(),
        family: family.into(),
        customer_id: owner.id,
        expires_at: now() + Duration::days(1),
        used_at: None,
        revoked: false,
    };
    let mut tx = store.begin().await.unwrap();
    for c in [&leaver, &other] {
        tx.insert_customer(c).await.unwrap();
    }
    for t in [
        token("l1", "f1", &leaver),
        token("l2", "f2", &leaver),
        token("o1", "f3", &other),
    ] {
        tx.insert_refresh_token(&t).await.unwrap();
    }
    tx.commit().await.unwrap();

    let at = now();
    let changed = Customer {
        role: Role::Operator,
        password_hash: "h2".into(),
        disabled_at: Some(at),
        ..leaver.clone()
    };
    let mut tx = store.begin().await.unwrap();
    assert!(tx.update_customer(&changed).await.unwrap());
    assert!(
        !tx.update_customer(&staff("nobody@shop.kr")).await.unwrap(),
        "an unknown account is not created"
    );
    tx.revoke_customer_tokens(leaver.id).await.unwrap();
    tx.commit().await.unwrap();

    let mut r = store.read().await.unwrap();
    let stored = r.customer(leaver.id).await.unwrap().unwrap();
    assert_eq!(
        (
            stored.role,
            stored.password_hash.as_str(),
            stored.email.as_str()
        ),
        (Role::Operator, "h2", "leaver@shop.kr")
    );
    let disabled = stored.disabled_at.expect("disabled_at is kept");
    assert!(
        (disabled - at).num_milliseconds().abs() < 1,
        "{disabled} vs {at}"
    );
    assert!(r
        .customer_by_email("nobody@shop.kr")
        .await
        .unwrap()
        .is_none());
    for hash in ["l1", "l2"] {
        assert!(
            r.refresh_token(hash).await.unwrap().unwrap().revoked,
            "{hash}"
        );
    }
    assert!(!r.refresh_token("o1").await.unwrap().unwrap().revoked);
    assert!(r
        .customer(other.id)
        .await
        .unwrap()
        .unwrap()
        .disabled_at
        .is_none());
    drop(r);

    // Enabled again.
    let mut tx = store.begin().await.unwrap();
    assert!(tx
        .update_customer(&Customer {
            disabled_at: None,
            session_version: 0,
            ..stored
        })
        .await
        .unwrap());
    tx.commit().await.unwrap();
    let mut r = store.read().await.unwrap();
    assert!(r
        .customer_by_email("leaver@shop.kr")
        .await
        .unwrap()
        .unwrap()
        .disabled_at
        .is_none());
}

pub async fn accounts_tokens_idempotency_audit(store: Arc<dyn Store>) {
    let c = Customer {
        id: CustomerId::new(),
        email: "op@shop.kr".into(),
        password_hash: "h".into(),
        role: Role::Operator,
        created_at: now(),
        disabled_at: None,
        session_version: 0,
    };
    let mut tx = store.begin().await.unwrap();
    tx.insert_customer(&c).await.unwrap();
    let dup = Customer {
        id: CustomerId::new(),
        ..c.clone()
    };
    assert!(matches!(
        tx.insert_customer(&dup).await.unwrap_err(),
        CoreError::Conflict {
            code: "email_taken",
            ..
        }
    ));
    drop(tx);
    let mut tx = store.begin().await.unwrap();
    tx.insert_customer(&c).await.unwrap();
    let t = RefreshToken {
        token_hash: "abc".into(),
        family: "fam".into(),
        customer_id: c.id,
        expires_at: now() + Duration::days(1),
        used_at: None,
        revoked: false,
    };
    tx.insert_refresh_token(&t).await.unwrap();
    assert!(tx.use_refresh_token("abc", now()).await.unwrap());
    assert!(
        !tx.use_refresh_token("abc", now()).await.unwrap(),
        "a token is used once"
    );
    tx.revoke_refresh_family("fam").await.unwrap();
    let rec = IdempotencyRecord {
        scope: "checkout".into(),
        key: "k1".into(),
        fingerprint: "cart".into(),
        resource_id: "o".into(),
        created_at: now(),
    };
    tx.put_idempotency(&rec).await.unwrap();
    for i in 0..3 {
        tx.append_audit(&AuditEntry {
            id: 0,
            at: now(),
            actor_id: Some(c.id),
            actor_email: c.email.clone(),
            action: format!("a{i}"),
            target_type: "product".into(),
            target_id: "x".into(),
            details: serde_json::json!({"i": i}),
        })
        .await
        .unwrap();
    }
    tx.commit().await.unwrap();
    let mut r = store.read().await.unwrap();
    assert_eq!(
        r.customer_by_email("op@shop.kr").await.unwrap().unwrap().id,
        c.id
    );
    assert_eq!(
        r.customers_with_roles(&[Role::Operator])
            .await
            .unwrap()
            .len(),
        1
    );
    assert!(r
        .customers_with_roles(&[Role::Admin])
        .await
        .unwrap()
        .is_empty());
    let tok = r.refresh_token("abc").await.unwrap().unwrap();
    assert!(tok.used_at.is_some() && tok.revoked);
    assert_eq!(
        r.idempotency("checkout", "k1").await.unwrap(),
        Some(rec.clone())
    );
    assert!(r.idempotency("other", "k1").await.unwrap().is_none());
    let log = r.audit_entries(2, None).await.unwrap();
    assert_eq!(
        log.iter().map(|e| e.action.as_str()).collect::<Vec<_>>(),
        vec!["a2", "a1"]
    );
    let older = r.audit_entries(10, Some(log[1].id)).await.unwrap();
    assert_eq!(older.len(), 1);
    assert_eq!(older[0].details, serde_json::json!({"i": 0}));
    drop(r);
    let mut tx = store.begin().await.unwrap();
    assert!(matches!(
        tx.put_idempotency(&rec).await.unwrap_err(),
        CoreError::Conflict {
            code: "idempotency_conflict",
            ..
        }
    ));
}

/// `n` `order.placed` events over `aggregates` orders (`o0`, `o1`, ...), payload `{"i": i}`.
fn placed_events(n: usize, aggregates: usize) -> Vec<DomainEvent> {
    (0..n)
        .map(|i| {
            DomainEvent::new(
                "order.placed",
                "order",
                format!("o{}", i % aggregates),
                now(),
                serde_json::json!({"i": i}),
            )
        })
        .collect()
}

pub async fn outbox_keeps_commit_order(store: Arc<dyn Store>) {
    assert_eq!(
        store.outbox_backlog().await.unwrap(),
        crate::ports::OutboxBacklog::default()
    );
    // The first event happened earliest, so the backlog's age is its age.
    let mut events = placed_events(5, 5);
    for (i, e) in events.iter_mut().enumerate() {
        e.occurred_at = now() - Duration::minutes(10 - i as i64);
    }
    let mut tx = store.begin().await.unwrap();
    tx.append_events(&events[..3]).await.unwrap();
    tx.commit().await.unwrap();
    let mut tx = store.begin().await.unwrap();
    tx.append_events(&events[3..]).await.unwrap();
    tx.commit().await.unwrap();
    let backlog = |unsent: u64, oldest: &DomainEvent| {
        let store = store.clone();
        let at = oldest.occurred_at;
        async move {
            let b = store.outbox_backlog().await.unwrap();
            assert_eq!(b.unsent, unsent, "{b:?}");
            let off = (b.oldest.expect("an oldest event") - at).num_milliseconds();
            assert_eq!(off, 0, "{b:?}, expected {at}");
        }
    };
    backlog(5, &events[0]).await;
    let rows = store.outbox_pending(3).await.unwrap();
    assert_eq!(
        rows.iter().map(|r| r.event.clone()).collect::<Vec<_>>(),
        events[..3].to_vec()
    );
    store
        .outbox_mark_sent(&rows.iter().map(|r| r.seq).collect::<Vec<_>>())
        .await
        .unwrap();
    backlog(2, &events[3]).await;
    let rest = store.outbox_pending(10).await.unwrap();
    // Pruning removes sent rows only.
    assert_eq!(
        store
            .prune(
                now() + Duration::seconds(1),
                now() - Duration::days(1),
                now()
            )
            .await
            .unwrap(),
        3
    );
    assert_eq!(
        store.outbox_pending(10).await.unwrap().len(),
        2,
        "unsent rows survive pruning"
    );
    assert_eq!(
        rest.iter().map(|r| r.event.id).collect::<Vec<_>>(),
        events[3..].iter().map(|e| e.id).collect::<Vec<_>>()
    );
    store.ping().await.unwrap();
    let mut tx = store.begin().await.unwrap();
    tx.upsert_category(&Category {
        handle: "ginseng".into(),
        name: text(&[("ko", "홍삼")]),
    })
    .await
    .unwrap();
    tx.upsert_category(&Category {
        handle: "ginseng".into(),
        name: text(&[("ko", "홍삼"), ("en", "Red ginseng")]),
    })
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let cats = store.read().await.unwrap().categories().await.unwrap();
    assert_eq!(cats.len(), 1);
    assert_eq!(cats[0].name.0.len(), 2);
}

pub async fn outbox_lease_has_one_holder(store: Arc<dyn Store>) {
    let ttl = std::time::Duration::from_millis(800);
    assert!(
        store.outbox_lease("a", ttl).await.unwrap(),
        "a free lease is taken"
    );
    assert!(
        !store.outbox_lease("b", ttl).await.unwrap(),
        "a held lease is refused"
    );
    assert!(
        store.outbox_lease("a", ttl).await.unwrap(),
        "the holder renews"
    );
    tokio::time::sleep(std::time::Duration::from_millis(1000)).await;
    assert!(
        store.outbox_lease("b", ttl).await.unwrap(),
        "an expired lease moves"
    );
    assert!(
        !store.outbox_lease("a", ttl).await.unwrap(),
        "the old holder lost it"
    );
    // Many relays racing for a free lease: exactly one wins.
    tokio::time::sleep(std::time::Duration::from_millis(1000)).await;
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .outbox_lease(&format!("r{i}"), std::time::Duration::from_secs(30))
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut winners = 0;
    for t in tasks {
        winners += usize::from(t.await.unwrap());
    }
    assert_eq!(winners, 1);
}

/// Only the holder gives the lease up, and then it is free at once, not after its TTL.
pub async fn outbox_lease_is_released_by_its_holder_only(store: Arc<dyn Store>) {
    let ttl = std::time::Duration::from_secs(60);
    assert!(store.outbox_lease("a", ttl).await.unwrap());
    store.outbox_release_lease("b").await.unwrap();
    assert!(
        !store.outbox_lease("b", ttl).await.unwrap(),
        "another holder's release leaves the lease alone"
    );
    store.outbox_release_lease("a").await.unwrap();
    assert!(
        store.outbox_lease("b", ttl).await.unwrap(),
        "a released lease is free before its TTL ran out"
    );
    store.outbox_release_lease("a").await.unwrap();
    assert!(
        !store.outbox_lease("a", ttl).await.unwrap(),
        "releasing a lease one no longer holds changes nothing"
    );
}

pub async fn projections_apply_once(store: Arc<dyn Store>) {
    let event = EventId::new();
    let at = now();
    let day = at.date_naive();
    let pid = ProductId::new();
    let row = SalesRow {
        day,
        country: "ID".into(),
        product_id: pid,
        currency: "IDR".into(),
        orders: 1,
        units: 2,
        revenue_minor: 250_000,
    };
    let mut tx = store.begin().await.unwrap();
    assert!(tx.mark_applied("stats", event, at).await.unwrap());
    tx.add_sales(std::slice::from_ref(&row)).await.unwrap();
    tx.commit().await.unwrap();
    let mut tx = store.begin().await.unwrap();
    assert!(
        !tx.mark_applied("stats", event, at).await.unwrap(),
        "applied twice"
    );
    assert!(
        tx.mark_applied("other", event, at).await.unwrap(),
        "consumers are separate"
    );
    drop(tx);
    // A rolled-back mark is not kept.
    let mut tx = store.begin().await.unwrap();
    assert!(tx.mark_applied("other", event, at).await.unwrap());
    tx.add_sales(&[SalesRow {
        orders: -1,
        units: -1,
        revenue_minor: -100_000,
        ..row.clone()
    }])
    .await
    .unwrap();
    tx.commit().await.unwrap();
    // Several at once: new ones come back once each, in the order given.
    let (x, y) = (EventId::new(), EventId::new());
    let mut tx = store.begin().await.unwrap();
    assert_eq!(
        tx.mark_applied_many("stats", &[x, event, y, x], at)
            .await
            .unwrap(),
        vec![x, y]
    );
    assert!(tx
        .mark_applied_many("stats", &[], at)
        .await
        .unwrap()
        .is_empty());
    tx.commit().await.unwrap();
    let mut tx = store.begin().await.unwrap();
    assert!(tx
        .mark_applied_many("stats", &[y, x], at)
        .await
        .unwrap()
        .is_empty());
    drop(tx);
    let rows = store.read().await.unwrap().sales(day, day).await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(
        (rows[0].orders, rows[0].units, rows[0].revenue_minor),
        (0, 1, 150_000)
    );
    assert_eq!(rows[0].product_id, pid);
    let none = store
        .read()
        .await
        .unwrap()
        .sales(day.succ_opt().unwrap(), day.succ_opt().unwrap())
        .await
        .unwrap();
    assert!(none.is_empty());

    // Sums past the range of a 64-bit integer stay integers at its bound (SQLite would
    // turn the sum into a float, PostgreSQL refuse it and stall the consumer).
    let big = SalesRow {
        product_id: ProductId::new(),
        revenue_minor: i64::MAX - 10,
        ..row.clone()
    };
    for rows in [vec![big.clone()], vec![big.clone(), big.clone()]] {
        let mut tx = store.begin().await.unwrap();
        tx.add_sales(&rows).await.unwrap();
        tx.commit().await.unwrap();
    }
    let read = |p: ProductId| {
        let store = store.clone();
        async move {
            let rows = store.read().await.unwrap().sales(day, day).await.unwrap();
            rows.into_iter().find(|r| r.product_id == p).unwrap()
        }
    };
    let saturated = read(big.product_id).await;
    assert_eq!((saturated.orders, saturated.revenue_minor), (3, i64::MAX));
    let refund = SalesRow {
        revenue_minor: i64::MIN + 5,
        ..big.clone()
    };
    for _ in 0..3 {
        let mut tx = store.begin().await.unwrap();
        tx.add_sales(std::slice::from_ref(&refund)).await.unwrap();
        tx.commit().await.unwrap();
    }
    assert_eq!(read(big.product_id).await.revenue_minor, i64::MIN);

    let n = NotificationRecord {
        id: 0,
        event_id: event,
        channel: "email".into(),
        recipient: "buyer@example.com".into(),
        locale: "ko".into(),
        template: "order.placed".into(),
        subject: "주문 접수".into(),
        body: "주문이 접수되었습니다".into(),
        created_at: at,
    };
    for _ in 0..2 {
        let mut tx = store.begin().await.unwrap();
        tx.insert_notification(&n).await.unwrap();
        tx.commit().await.unwrap();
    }
    let mut tx = store.begin().await.unwrap();
    tx.insert_notification(&NotificationRecord {
        event_id: EventId::new(),
        ..n.clone()
    })
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let list = store
        .read()
        .await
        .unwrap()
        .notifications(10, None)
        .await
        .unwrap();
    assert_eq!(list.len(), 2, "one per event and channel");
    assert!(list[0].id > list[1].id, "newest first");
    assert_eq!(list[1].event_id, event);
    assert_eq!(list[1].subject, "주문 접수");
    let older = store
        .read()
        .await
        .unwrap()
        .notifications(10, Some(list[0].id))
        .await
        .unwrap();
    assert_eq!(older.len(), 1);
}

/// The notifications consumer over the store notifier: a redelivered event gives one
/// message, and needs no applied-event record (the notification row is the record).
pub async fn store_notifications_apply_once(store: Arc<dyn Store>) {
    use crate::consumers::{OrderNotifications, StoreNotifier};
    use crate::events::{DomainEvent, EventHandler};
    let consumer =
        OrderNotifications::new(store.clone(), Arc::new(StoreNotifier::new(store.clone())))
            .unwrap();
    let event = DomainEvent::new(
        "order.paid",
        "order",
        "o1",
        now(),
        serde_json::json!({
            "order_id": "o1", "number": "JT-20261128-REDELIVR", "status": "paid",
            "email": "twice@example.com", "country": "KR", "currency": "KRW", "locale": "ko",
            "totals": {"total": {"amount": "39000", "currency": "KRW"}},
            "lines": [], "payment": {"provider": "manual", "status": "captured"},
            "fulfillment": null
        }),
    );
    consumer.handle(&event).await.unwrap();
    consumer.handle(&event).await.unwrap();
    let mut r = store.read().await.unwrap();
    let mine: Vec<_> = r
        .notifications(100, None)
        .await
        .unwrap()
        .into_iter()
        .filter(|n| n.event_id == event.id)
        .collect();
    assert_eq!(mine.len(), 1, "one message for a redelivered event");
    assert!(mine[0].body.contains("JT-20261128-REDELIVR"));
    assert!(
        !r.applied(OrderNotifications::NAME, event.id).await.unwrap(),
        "no separate applied mark"
    );
}

/// An `order.*` event as checkout writes it: one line of `units` x 10,000 KRW of
/// `product` (enough of the payload for both consumers).
fn order_event(event_type: &str, number: &str, product: ProductId, units: i64) -> DomainEvent {
    DomainEvent::new(
        event_type,
        "order",
        number,
        now(),
        serde_json::json!({
            "order_id": number, "number": number, "status": "paid",
            "email": "batch@example.com", "country": "KR", "currency": "KRW", "locale": "ko",
            "totals": {"total": {"amount": (units * 10_000).to_string(), "currency": "KRW"}},
            "lines": [{"product_id": product, "quantity": units,
                       "line_total": {"amount": (units * 10_000).to_string(), "currency": "KRW"}}],
            "payment": {"provider": "manual", "status": "captured"},
            "fulfillment": null
        }),
    )
}

/// Both store-backed consumers applied in batches (one transaction each), as the
/// transports hand events over: an event repeated within a batch or in a redelivered
/// batch counts once, and an unusable event is skipped without losing the rest.
pub async fn consumer_batches_apply_once(store: Arc<dyn Store>) {
    use crate::consumers::{OrderNotifications, SalesStatistics, StoreNotifier};
    use crate::events::{apply_batch, BatchApplied};
    let stats = SalesStatistics::new(store.clone());
    let notes = OrderNotifications::new(store.clone(), Arc::new(StoreNotifier::new(store.clone())))
        .unwrap();
    let product = ProductId::new();
    let a = order_event("order.paid", "JT-BATCH-A", product, 2);
    let b = order_event("order.paid", "JT-BATCH-B", product, 3);
    let placed = order_event("order.placed", "JT-BATCH-C", product, 1);
    let mut broken = order_event("order.paid", "JT-BATCH-X", product, 9);
    broken.payload = serde_json::json!({"not": "an order"});

    // `a` comes twice in one batch.
    assert_eq!(
        apply_batch(&stats, &[&a, &b, &a]).await.unwrap(),
        BatchApplied {
            applied: 3,
            skipped: 0
        }
    );
    assert_eq!(
        apply_batch(&notes, &[&a, &placed, &b, &a]).await.unwrap(),
        BatchApplied {
            applied: 4,
            skipped: 0
        }
    );
    // Delivered again, with an unusable event in the middle and a new refund after it.
    let refund = order_event("order.refunded", "JT-BATCH-B", product, 3);
    let again = [&b, &broken, &a, &refund];
    assert_eq!(
        apply_batch(&stats, &again).await.unwrap(),
        BatchApplied {
            applied: 3,
            skipped: 1
        }
    );
    assert_eq!(
        apply_batch(&notes, &[&b, &broken, &a]).await.unwrap(),
        BatchApplied {
            applied: 2,
            skipped: 1
        }
    );

    let mut r = store.read().await.unwrap();
    let day = a.occurred_at.date_naive();
    let rows: Vec<_> = r
        .sales(day, day)
        .await
        .unwrap()
        .into_iter()
        .filter(|row| row.product_id == product)
        .collect();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(
        (rows[0].orders, rows[0].units, rows[0].revenue_minor),
        (1, 2, 20_000),
        "a and b once each, b refunded once"
    );
    for e in [&a, &b, &refund] {
        assert!(r.applied(SalesStatistics::NAME, e.id).await.unwrap());
    }
    let mut sent: Vec<_> = r
        .notifications(100, None)
        .await
        .unwrap()
        .into_iter()
        .filter(|n| n.recipient == "batch@example.com")
        .map(|n| n.event_id)
        .collect();
    sent.sort();
    let mut want = vec![a.id, b.id, placed.id];
    want.sort();
    assert_eq!(sent, want, "one message each for a, b and placed");
}

fn rule_doc(kind: &str, key: &str, version: i64, actor: Option<&str>) -> RuleDocument {
    RuleDocument {
        kind: kind.into(),
        key: key.into(),
        version,
        doc: serde_json::json!({"key": key, "version": version, "limits": {"annual_usd": "1000"}}),
        created_at: now(),
        actor_email: actor.map(str::to_string),
    }
}

pub async fn rule_documents_are_versioned(store: Arc<dyn Store>) {
    let id1 = rule_doc("country_rules", "ID", 1, None);
    let id2 = rule_doc("country_rules", "ID", 2, Some("op@shop.kr"));
    let kr1 = rule_doc("country_rules", "KR", 1, Some("op@shop.kr"));
    let rates = rule_doc("exchange_rates", "default", 3, None);
    let mut tx = store.begin().await.unwrap();
    for d in [&id1, &kr1, &rates] {
        tx.insert_document(d).await.unwrap();
    }
    tx.commit().await.unwrap();
    let mut tx = store.begin().await.unwrap();
    tx.insert_document(&id2).await.unwrap();
    assert_eq!(
        tx.latest_documents("country_rules").await.unwrap(),
        vec![id2.clone(), kr1.clone()],
        "the writing transaction sees its own version"
    );
    tx.commit().await.unwrap();

    let mut r = store.read().await.unwrap();
    assert_eq!(
        r.latest_documents("country_rules").await.unwrap(),
        vec![id2.clone(), kr1.clone()],
        "the highest version per key, keys in order"
    );
    assert_eq!(
        r.latest_documents("exchange_rates").await.unwrap(),
        vec![rates.clone()]
    );
    assert!(r.latest_documents("nothing").await.unwrap().is_empty());
    assert_eq!(
        r.document_history("country_rules", "ID", 10).await.unwrap(),
        vec![id2.clone(), id1.clone()],
        "newest first"
    );
    assert_eq!(
        r.document_history("country_rules", "ID", 1).await.unwrap(),
        vec![id2.clone()]
    );
    assert!(r
        .document_history("country_rules", "SG", 10)
        .await
        .unwrap()
        .is_empty());
    drop(r);

    // Two operators saving version 2: the second is told, and nothing changes.
    let mut tx = store.begin().await.unwrap();
    let err = tx
        .insert_document(&rule_doc("country_rules", "ID", 2, Some("other@shop.kr")))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            CoreError::Conflict {
                code: "version_conflict",
                ..
            }
        ),
        "{err:?}"
    );
    drop(tx);
    assert_eq!(
        store
            .read()
            .await
            .unwrap()
            .document_history("country_rules", "ID", 10)
            .await
            .unwrap(),
        vec![id2, id1]
    );
}

pub async fn buyer_orders_add_up_one_buyer(store: Arc<dyn Store>) {
    let to = now();
    let from = to - Duration::days(365);
    let krw = |minor: i64| Money::from_minor(minor, Currency::KRW).unwrap();
    let placed = |buyer: Option<&str>, status, at, subtotal: Money| {
        let mut o = order(None, status, Duration::minutes(30));
        o.buyer_key = buyer.map(str::to_string);
        o.created_at = at;
        o.updated_at = at;
        o.totals.subtotal = subtotal;
        o.totals.total = subtotal;
        o
    };
    let counted = [
        placed(
            Some("b1"),
            OrderStatus::Paid,
            to - Duration::days(10),
            krw(1000),
        ),
        placed(
            Some("b1"),
            OrderStatus::Pending,
            to - Duration::days(1),
            krw(2500),
        ),
        placed(Some("b1"), OrderStatus::Delivered, from, krw(700)),
        placed(
            Some("b1"),
            OrderStatus::Fulfilled,
            to - Duration::days(3),
            Money::parse("29.90", Currency::USD).unwrap(),
        ),
    ];
    let ignored = [
        placed(
            Some("b1"),
            OrderStatus::Canceled,
            to - Duration::days(2),
            krw(4000),
        ),
        placed(
            Some("b1"),
            OrderStatus::Refunded,
            to - Duration::days(2),
            krw(8000),
        ),
        placed(
            Some("b2"),
            OrderStatus::Paid,
            to - Duration::days(2),
            krw(16000),
        ),
        placed(None, OrderStatus::Paid, to - Duration::days(2), krw(32000)),
        placed(
            Some("b1"),
            OrderStatus::Paid,
            from - Duration::microseconds(1),
            krw(64000),
        ),
        placed(Some("b1"), OrderStatus::Paid, to, krw(128000)),
    ];
    let mut tx = store.begin().await.unwrap();
    tx.lock_buyer("b1").await.unwrap();
    tx.lock_buyer("b1").await.unwrap();
    for o in counted.iter().chain(&ignored) {
        tx.insert_order(o).await.unwrap();
    }
    tx.commit().await.unwrap();

    let sorted = |mut v: Vec<Money>| {
        v.sort_by_key(|m| (m.currency, m.amount));
        v
    };
    let mut r = store.read().await.unwrap();
    assert_eq!(
        r.order(counted[0].id).await.unwrap().unwrap(),
        counted[0],
        "buyer_key is kept"
    );
    let past = r.buyer_orders("b1", from, to).await.unwrap();
    assert_eq!(
        past.iter().map(|o| o.created_at).collect::<Vec<_>>(),
        {
            let mut at: Vec<_> = counted.iter().map(|o| o.created_at).collect();
            at.sort();
            at
        },
        "oldest first"
    );
    assert_eq!(
        past[0].units,
        vec![(counted[2].lines[0].product_id, counted[2].lines[0].quantity)]
    );
    let got: Vec<Money> = past.iter().map(|o| o.subtotal).collect();
    assert_eq!(
        sorted(got.clone()),
        sorted(counted.iter().map(|o| o.totals.subtotal).collect()),
        "[from, to), this buyer, not canceled or refunded"
    );
    let krw_sum: i64 = got
        .iter()
        .filter(|m| m.currency == Currency::KRW)
        .map(|m| m.minor_units())
        .sum();
    assert_eq!(krw_sum, 4200);
    assert_eq!(
        r.buyer_orders("b2", from, to)
            .await
            .unwrap()
            .iter()
            .map(|o| o.subtotal)
            .collect::<Vec<_>>(),
        vec![krw(16000)]
    );
    assert!(r.buyer_orders("nobody", from, to).await.unwrap().is_empty());
    drop(r);

    // Canceling an order takes it out of the buyer's total.
    let mut canceled = counted[1].clone();
    canceled
        .transition(OrderStatus::Canceled, Actor::System, None, now())
        .unwrap();
    let mut tx = store.begin().await.unwrap();
    assert!(tx
        .update_order_if(&canceled, OrderStatus::Pending)
        .await
        .unwrap());
    let got = tx.buyer_orders("b1", from, to).await.unwrap();
    assert_eq!(got.len(), 3, "the transaction sees its own change");
    tx.commit().await.unwrap();
    assert_eq!(
        store
            .read()
            .await
            .unwrap()
            .buyer_orders("b1", from, to)
            .await
            .unwrap()
            .len(),
        3
    );
}

pub async fn lock_buyer_serializes_a_buyer(store: Arc<dyn Store>) {
    let mut first = store.begin().await.unwrap();
    first.lock_buyer("b1").await.unwrap();
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let second = {
        let (store, done) = (store.clone(), done.clone());
        tokio::spawn(async move {
            let mut tx = store.begin().await.unwrap();
            tx.lock_buyer("b1").await.unwrap();
            done.store(true, std::sync::atomic::Ordering::SeqCst);
            tx.commit().await.unwrap();
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(
        !done.load(std::sync::atomic::Ordering::SeqCst),
        "a second transaction of the buyer waits"
    );
    first.commit().await.unwrap();
    tokio::time::timeout(std::time::Duration::from_secs(10), second)
        .await
        .expect("the second transaction goes on after the first commits")
        .unwrap();
    assert!(done.load(std::sync::atomic::Ordering::SeqCst));
}

/// A provider whose every webhook says "paid" for one order, as a provider redelivering
/// one notification would.
#[derive(Debug)]
struct RedeliveringProvider {
    name: &'static str,
    order: OrderId,
    amount: Money,
}

#[async_trait::async_trait]
impl crate::payment::PaymentProvider for RedeliveringProvider {
    fn name(&self) -> &str {
        self.name
    }
    async fn authorize(
        &self,
        _: &crate::payment::PaymentRequest,
    ) -> crate::CoreResult<crate::payment::PaymentOutcome> {
        Err(CoreError::Internal("not used".into()))
    }
    async fn refund(&self, r: &crate::payment::RefundRequest) -> crate::CoreResult<String> {
        Ok(format!("refund-{}", r.order_id))
    }
    /// The body is the payment's reference.
    async fn verify_webhook(
        &self,
        _: &std::collections::HashMap<String, String>,
        body: &[u8],
    ) -> crate::CoreResult<crate::payment::WebhookEvent> {
        Ok(crate::payment::WebhookEvent::Paid {
            order_id: self.order,
            reference: String::from_utf8_lossy(body).into_owned(),
            amount: self.amount,
        })
    }
}

/// Two late payments (paid after the order was canceled), each delivered four times at
/// once, through the engine: each is recorded on the order and announced exactly once,
/// neither write lost to the other (on PostgreSQL this needs `OrderRead::order`'s lock).
pub async fn late_payment_deliveries_race_to_one_event(store: Arc<dyn Store>) {
    let mut order = order(None, OrderStatus::Canceled, Duration::hours(-1));
    order.payment.provider = "redelivering".into();
    let mut tx = store.begin().await.unwrap();
    tx.insert_order(&order).await.unwrap();
    tx.commit().await.unwrap();
    let engine = engine_paying_with(
        &store,
        Arc::new(RedeliveringProvider {
            name: "redelivering",
            order: order.id,
            amount: order.payment.amount,
        }),
    );
    let deliveries: Vec<_> = (0..8)
        .map(|i| {
            let engine = engine.clone();
            let reference = if i % 2 == 0 { "pay-a" } else { "pay-b" };
            tokio::spawn(async move {
                engine
                    .handle_payment_webhook(
                        "redelivering",
                        &Default::default(),
                        reference.as_bytes(),
                    )
                    .await
            })
        })
        .collect();
    for d in deliveries {
        d.await.unwrap().expect("every delivery is acknowledged");
    }
    let rows = store.outbox_pending(100).await.unwrap();
    let mut late: Vec<_> = rows
        .iter()
        .filter(|r| r.event.event_type == "order.payment_after_cancel")
        .map(|r| r.event.payload["late_payment"]["reference"].clone())
        .collect();
    late.sort_by_key(|r| r.to_string());
    assert_eq!(
        late,
        ["pay-a", "pay-b"],
        "one event per late payment: {rows:?}"
    );
    let stored = store
        .read()
        .await
        .unwrap()
        .order(order.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.status, OrderStatus::Canceled);
    let mut refs = stored.payment.late_references;
    refs.sort();
    assert_eq!(refs, ["pay-a", "pay-b"], "no delivery's write is lost");
}

/// A refresh token presented twice at once (a stolen copy racing its owner): one call
/// rotates it, the other is a replay that revokes the family, and the successor the
/// first call handed out must be revoked with it, whichever call the store ran first.
pub async fn a_refresh_token_replayed_at_once_leaves_no_valid_successor(store: Arc<dyn Store>) {
    // The builder wants a payment provider; none is used here.
    let engine = crate::EngineBuilder::new(store, vec![7u8; 32])
        .payments(
            crate::payment::PaymentRegistry::new().register(Arc::new(RedeliveringProvider {
                name: "redelivering",
                order: OrderId::new(),
                amount: Money::zero(Currency::KRW),
            })),
        )
        .build()
        .unwrap();
    engine
        .register("racer@example.com", "racer-password-1")
        .await
        .unwrap();
    for round in 0..8 {
        let pair = engine
            .login(crate::service::users::LoginAttempt {
                email: "racer@example.com",
                password: "racer-password-1",
                client_ip: None,
                staff_only: false,
            })
            .await
            .unwrap();
        let racers: Vec<_> = (0..2)
            .map(|_| {
                let (engine, token) = (engine.clone(), pair.refresh_token.clone());
                tokio::spawn(async move { engine.refresh(&token).await })
            })
            .collect();
        let mut successors = Vec::new();
        for r in racers {
            if let Ok(p) = r.await.unwrap() {
                successors.push(p.refresh_token);
            }
        }
        assert_eq!(successors.len(), 1, "round {round}: one rotation wins");
        assert!(
            engine.refresh(&successors[0]).await.is_err(),
            "round {round}: the replay revoked the successor too"
        );
    }
}

/// An operator confirming a pending transfer while another cancels the order: whatever
/// the interleaving, money that was captured is never left unrefunded on a canceled
/// order (on PostgreSQL the cancel's decision must use the locked read).
pub async fn confirm_and_cancel_racing_never_keep_money_unrefunded(store: Arc<dyn Store>) {
    let engine = manual_engine(&store);
    let staff = crate::auth::Principal {
        id: CustomerId::new(),
        email: "ops@example.com".into(),
        role: Role::Operator,
    };
    for round in 0..12 {
        let o = order(None, OrderStatus::Pending, Duration::hours(1));
        let mut tx = store.begin().await.unwrap();
        tx.insert_order(&o).await.unwrap();
        tx.commit().await.unwrap();
        let confirm = {
            let (engine, staff) = (engine.clone(), staff.clone());
            tokio::spawn(async move { engine.confirm_manual_payment(&staff, o.id, None).await })
        };
        let cancel = {
            let (engine, staff) = (engine.clone(), staff.clone());
            tokio::spawn(async move { engine.cancel_by_staff(&staff, o.id, None).await })
        };
        let (confirmed, canceled) = (confirm.await.unwrap(), cancel.await.unwrap());
        let last = stored_order(&store, o.id).await;
        if confirmed.is_ok() {
            assert!(
                matches!(
                    (last.status, last.payment.status),
                    (OrderStatus::Paid, PaymentStatus::Captured)
                        | (OrderStatus::Canceled, PaymentStatus::Refunded)
                ),
                "round {round}: paid, then {:?} / {:?} (cancel: {canceled:?})",
                last.status,
                last.payment.status
            );
        } else {
            assert_eq!(last.status, OrderStatus::Canceled, "round {round}");
            assert!(canceled.is_ok(), "round {round}: one of the two wins");
        }
    }
}

/// A provider whose refunds wait until the test lets them go, and then succeed or fail
/// as told: the moment between a cancellation's refund and its record, held open.
#[derive(Debug)]
struct GatedRefunds {
    entered: tokio::sync::Notify,
    release: tokio::sync::Notify,
    fail: std::sync::atomic::AtomicBool,
    /// The refund goes through but the answer is lost (a timeout): `Unavailable`.
    lost: std::sync::atomic::AtomicBool,
    /// A refund is waiting at the gate; another call meanwhile is refused at once, as
    /// providers refuse a key whose first request is still running.
    busy: std::sync::atomic::AtomicBool,
    refunds: std::sync::atomic::AtomicUsize,
}

#[async_trait::async_trait]
impl crate::payment::PaymentProvider for GatedRefunds {
    fn name(&self) -> &str {
        "manual"
    }
    async fn authorize(
        &self,
        _: &crate::payment::PaymentRequest,
    ) -> crate::CoreResult<crate::payment::PaymentOutcome> {
        Err(CoreError::Internal("not used".into()))
    }
    async fn refund(&self, r: &crate::payment::RefundRequest) -> crate::CoreResult<String> {
        use std::sync::atomic::Ordering::SeqCst;
        if self.busy.swap(true, SeqCst) {
            return Err(CoreError::Unavailable(
                "a refund with this key is in progress".into(),
            ));
        }
        self.entered.notify_one();
        self.release.notified().await;
        self.busy.store(false, SeqCst);
        if self.fail.load(SeqCst) {
            return Err(CoreError::PaymentDeclined {
                code: "refund_refused".into(),
                message: "the charge can no longer be refunded".into(),
            });
        }
        self.refunds.fetch_add(1, SeqCst);
        if self.lost.load(SeqCst) {
            return Err(CoreError::Unavailable("the provider timed out".into()));
        }
        Ok(format!("refund-{}", r.order_id))
    }
}

/// A provider whose payments wait at a gate and are then declined: the moment between
/// checkout's commit and the record of the provider's answer, held open.
#[derive(Debug, Default)]
struct GatedDecline {
    entered: tokio::sync::Notify,
    release: tokio::sync::Notify,
}

#[async_trait::async_trait]
impl crate::payment::PaymentProvider for GatedDecline {
    fn name(&self) -> &str {
        "gated"
    }
    async fn authorize(
        &self,
        _: &crate::payment::PaymentRequest,
    ) -> crate::CoreResult<crate::payment::PaymentOutcome> {
        self.entered.notify_one();
        self.release.notified().await;
        Ok(crate::payment::PaymentOutcome::Declined {
            code: "card_declined".into(),
            message: "declined".into(),
        })
    }
    async fn refund(&self, r: &crate::payment::RefundRequest) -> crate::CoreResult<String> {
        Ok(format!("refund-{}", r.order_id))
    }
}

/// A decline recorded while the expiry sweeper cancels the same order: both lock the
/// order row before any stock row, so neither waits for the other in a circle (on
/// PostgreSQL the decline restocked first and deadlocked with the sweeper).
pub async fn a_decline_recorded_while_the_order_expires_does_not_deadlock(store: Arc<dyn Store>) {
    let p = product("gate", &[("en", "Gate")], &[("GATE-1", 1000, 5)]);
    let variant = p.variants[0].id;
    let mut tx = store.begin().await.unwrap();
    tx.insert_product(&p).await.unwrap();
    tx.commit().await.unwrap();
    let gate = Arc::new(GatedDecline::default());
    let engine = engine_paying_with(&store, gate.clone());
    let cart = engine
        .create_cart(
            crate::service::carts::NewCart {
                country: "KR".into(),
                currency: "KRW".into(),
                locale: Some("en".into()),
            },
            None,
        )
        .await
        .unwrap()
        .cart
        .id;
    engine.add_line(cart, variant, 1, None).await.unwrap();
    let update = crate::service::carts::CartUpdate {
        email: Some("gate@example.com".into()),
        shipping_address: Some(Address {
            name: "김".into(),
            line1: "1".into(),
            city: "Seoul".into(),
            postal_code: "04524".into(),
            country: "KR".into(),
            phone: Some("+82 10-1234-5678".into()),
            ..Default::default()
        }),
        ..Default::default()
    };
    engine.update_cart(cart, update, None).await.unwrap();
    let checkout = {
        let engine = engine.clone();
        tokio::spawn(async move {
            let choice = crate::service::checkout::PaymentChoice {
                provider: Some("gated".into()),
                data: BTreeMap::new(),
            };
            engine.complete_cart(cart, None, choice, None).await
        })
    };
    gate.entered.notified().await;
    let placed = store
        .read()
        .await
        .unwrap()
        .cart(cart)
        .await
        .unwrap()
        .unwrap()
        .order_id
        .expect("the order is placed before the provider is asked");

    // The sweeper's transaction, step by step: the order locked first...
    let mut sweeper = store.begin().await.unwrap();
    let mut order = sweeper.order(placed).await.unwrap().unwrap();
    gate.release.notify_one();
    // ... the decline meanwhile tries to record itself ...
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    // ... then the stock and the order.
    sweeper.return_stock(variant, 1).await.unwrap();
    order
        .transition(
            OrderStatus::Canceled,
            crate::order::Actor::System,
            Some("payment expired".into()),
            SystemClock.now(),
        )
        .unwrap();
    order.payment.status = PaymentStatus::Failed;
    assert!(sweeper
        .update_order_if(&order, OrderStatus::Pending)
        .await
        .unwrap());
    sweeper.commit().await.unwrap();

    let answer = tokio::time::timeout(std::time::Duration::from_secs(20), checkout)
        .await
        .expect("the checkout finishes")
        .unwrap();
    let answered = answer.expect("the checkout is answered (the order expired meanwhile)");
    assert_eq!(answered.order.status, OrderStatus::Canceled);
    let stock = store
        .read()
        .await
        .unwrap()
        .variants(&[variant])
        .await
        .unwrap()[0]
        .variant
        .stock;
    assert_eq!(stock, 5, "the unit went back once");
}

/// While a cancellation waits for the provider to refund a paid order, the order cannot
/// be fulfilled (goods shipped *and* money returned); a refused refund leaves the order
/// paid and shippable; an order left `refunding` by a crash is finished by the next
/// cancel.
pub async fn a_refunding_cancellation_holds_off_fulfilment(store: Arc<dyn Store>) {
    let gate = Arc::new(GatedRefunds {
        entered: tokio::sync::Notify::new(),
        release: tokio::sync::Notify::new(),
        fail: std::sync::atomic::AtomicBool::new(false),
        lost: std::sync::atomic::AtomicBool::new(false),
        busy: std::sync::atomic::AtomicBool::new(false),
        refunds: std::sync::atomic::AtomicUsize::new(0),
    });
    let engine = engine_paying_with(&store, gate.clone());
    let staff = crate::auth::Principal {
        id: CustomerId::new(),
        email: "ops@example.com".into(),
        role: Role::Operator,
    };
    let ship = || crate::service::orders::FulfillInput {
        carrier: "CJ".into(),
        tracking_number: "123".into(),
    };
    let paid = || {
        let mut o = order(None, OrderStatus::Paid, Duration::hours(1));
        o.payment.status = PaymentStatus::Captured;
        o.payment.reference = Some("pay-1".into());
        o.payment_expires_at = None;
        o
    };
    let insert = |o: Order| {
        let store = store.clone();
        async move {
            let mut tx = store.begin().await.unwrap();
            tx.insert_order(&o).await.unwrap();
            tx.commit().await.unwrap();
        }
    };
    let wait = std::time::Duration::from_secs(10);

    // A paid order whose cancel is spawned and has reached the provider.
    let cancel_at_the_gate = || {
        let (engine, staff, gate) = (engine.clone(), staff.clone(), gate.clone());
        let insert = &insert;
        async move {
            let o = paid();
            insert(o.clone()).await;
            let id = o.id;
            let cancel =
                tokio::spawn(async move { engine.cancel_by_staff(&staff, id, None).await });
            tokio::time::timeout(wait, gate.entered.notified())
                .await
                .expect("the cancel calls the provider");
            (o, cancel)
        }
    };

    // A cancel whose provider call goes straight through the gate. Waiting for the
    // gate's signal proves the provider was asked and takes the signal, so the next
    // scenario waits for its own call.
    let cancel_through_the_gate = |id: OrderId| {
        let (engine, staff, gate) = (engine.clone(), staff.clone(), gate.clone());
        async move {
            gate.release.notify_one();
            let answer = engine.cancel_by_staff(&staff, id, None).await;
            tokio::time::timeout(wait, gate.entered.notified())
                .await
                .expect("the cancel called the provider");
            answer
        }
    };

    // The refund is with the provider: fulfilment is refused, then the cancel lands.
    let (o, cancel) = cancel_at_the_gate().await;
    assert_eq!(
        stored_order(&store, o.id).await.payment.status,
        PaymentStatus::Refunding
    );
    let shipped = engine.fulfill_order(&staff, o.id, ship()).await;
    assert!(
        matches!(&shipped, Err(CoreError::Conflict { code, .. }) if *code == "invalid_state"),
        "fulfilment during the refund: {shipped:?}"
    );
    gate.release.notify_one();
    let canceled = tokio::time::timeout(wait, cancel).await.unwrap().unwrap();
    assert!(canceled.is_ok(), "{canceled:?}");
    let last = stored_order(&store, o.id).await;
    assert_eq!(
        (last.status, last.payment.status),
        (OrderStatus::Canceled, PaymentStatus::Refunded)
    );

    // The provider refuses the refund: the order is paid and can ship.
    gate.fail.store(true, std::sync::atomic::Ordering::SeqCst);
    let o = paid();
    insert(o.clone()).await;
    let refused = cancel_through_the_gate(o.id).await;
    assert!(refused.is_err(), "{refused:?}");
    let last = stored_order(&store, o.id).await;
    assert_eq!(
        (last.status, last.payment.status),
        (OrderStatus::Paid, PaymentStatus::Captured)
    );
    assert!(engine.fulfill_order(&staff, o.id, ship()).await.is_ok());

    // Two cancels at once: the second finds the first's refund with the provider and
    // is refused; it must not put the payment back, or the first, whose refund goes
    // through, would find a shippable paid order.
    gate.fail.store(false, std::sync::atomic::Ordering::SeqCst);
    let (o, first) = cancel_at_the_gate().await;
    let second = tokio::time::timeout(wait, engine.cancel_by_staff(&staff, o.id, None))
        .await
        .expect("the second cancel does not wait for the first");
    assert!(second.is_err(), "{second:?}");
    assert_eq!(
        stored_order(&store, o.id).await.payment.status,
        PaymentStatus::Refunding
    );
    let refunds_before = gate.refunds.load(std::sync::atomic::Ordering::SeqCst);
    gate.release.notify_one();
    let first = tokio::time::timeout(wait, first).await.unwrap().unwrap();
    assert!(first.is_ok(), "{first:?}");
    assert_eq!(
        gate.refunds.load(std::sync::atomic::Ordering::SeqCst),
        refunds_before + 1
    );
    let last = stored_order(&store, o.id).await;
    assert_eq!(
        (last.status, last.payment.status),
        (OrderStatus::Canceled, PaymentStatus::Refunded)
    );
    assert!(engine.fulfill_order(&staff, o.id, ship()).await.is_err());

    // The refund went through but its answer was lost: whether money moved is
    // unknown, so the order stays `refunding` and cannot ship; a cancel sent again
    // (same key at the provider) settles it.
    gate.lost.store(true, std::sync::atomic::Ordering::SeqCst);
    let o = paid();
    insert(o.clone()).await;
    let lost = cancel_through_the_gate(o.id).await;
    assert!(matches!(lost, Err(CoreError::Unavailable(_))), "{lost:?}");
    assert_eq!(
        stored_order(&store, o.id).await.payment.status,
        PaymentStatus::Refunding
    );
    assert!(engine.fulfill_order(&staff, o.id, ship()).await.is_err());
    gate.lost.store(false, std::sync::atomic::Ordering::SeqCst);
    let again = cancel_through_the_gate(o.id).await;
    assert!(again.is_ok(), "{again:?}");
    let last = stored_order(&store, o.id).await;
    assert_eq!(
        (last.status, last.payment.status),
        (OrderStatus::Canceled, PaymentStatus::Refunded)
    );

    // A mark nobody owns any more (its cancel was cut off long ago) and a provider that
    // refuses: the cancel takes the mark over and puts the payment back, so the order
    // can ship again rather than stay stuck. A recent mark is left alone.
    gate.fail.store(true, std::sync::atomic::Ordering::SeqCst);
    for (age, back) in [
        (Duration::minutes(10), true),
        (Duration::seconds(10), false),
    ] {
        let mut o = paid();
        o.payment.status = PaymentStatus::Refunding;
        o.updated_at = now() - age;
        insert(o.clone()).await;
        let refused = cancel_through_the_gate(o.id).await;
        assert!(refused.is_err(), "{refused:?}");
        let status = stored_order(&store, o.id).await.payment.status;
        let expected = if back {
            PaymentStatus::Captured
        } else {
            PaymentStatus::Refunding
        };
        assert_eq!(status, expected, "mark {age:?} old");
        assert_eq!(
            engine.fulfill_order(&staff, o.id, ship()).await.is_ok(),
            back
        );
    }
    gate.fail.store(false, std::sync::atomic::Ordering::SeqCst);

    // A crash left an order `refunding`: the next cancel refunds (same key) and ends it.
    let mut o = paid();
    o.payment.status = PaymentStatus::Refunding;
    insert(o.clone()).await;
    let finished = cancel_through_the_gate(o.id).await;
    assert!(finished.is_ok(), "{finished:?}");
    let last = stored_order(&store, o.id).await;
    assert_eq!(
        (last.status, last.payment.status),
        (OrderStatus::Canceled, PaymentStatus::Refunded)
    );

    // A cancel that found the payment `refunding` (another cancel marked it) and whose
    // refund goes through, while that other cancel, refused, put the payment back and
    // (second round) staff shipped the order: the money is gone, so the order says so,
    // canceled, or refunded with its event and the operator's audit entry.
    for shipped in [false, true] {
        let mut o = paid();
        o.payment.status = PaymentStatus::Refunding;
        insert(o.clone()).await;
        let late = {
            let (engine, staff) = (engine.clone(), staff.clone());
            tokio::spawn(async move { engine.cancel_by_staff(&staff, o.id, None).await })
        };
        tokio::time::timeout(wait, gate.entered.notified())
            .await
            .expect("the late cancel calls the provider");
        // The other cancel's undo, as `undo_refunding` writes it.
        let mut tx = store.begin().await.unwrap();
        let mut back = tx.order(o.id).await.unwrap().unwrap();
        back.payment.status = PaymentStatus::Captured;
        assert!(tx.update_order_if(&back, OrderStatus::Paid).await.unwrap());
        tx.commit().await.unwrap();
        if shipped {
            assert!(engine.fulfill_order(&staff, o.id, ship()).await.is_ok());
        }
        gate.release.notify_one();
        let answer = tokio::time::timeout(wait, late).await.unwrap().unwrap();
        let last = stored_order(&store, o.id).await;
        if !shipped {
            assert!(answer.is_ok(), "{answer:?}");
            assert_eq!(
                (last.status, last.payment.status),
                (OrderStatus::Canceled, PaymentStatus::Refunded)
            );
            continue;
        }
        assert!(
            matches!(&answer, Err(CoreError::Conflict { code, .. }) if *code == "invalid_state"),
            "{answer:?}"
        );
        assert_eq!(
            (last.status, last.payment.status),
            (OrderStatus::Refunded, PaymentStatus::Refunded)
        );
        let events = store.outbox_pending(10_000).await.unwrap();
        assert!(events
            .iter()
            .any(|r| r.event.aggregate_id == o.id.to_string()
                && r.event.event_type == "order.refunded"));
        let audit = store
            .read()
            .await
            .unwrap()
            .audit_entries(100, None)
            .await
            .unwrap();
        assert!(audit
            .iter()
            .any(|a| a.action == "order.cancel" && a.target_id == o.id.to_string()));
    }
}

/// Sessions begun or refreshed with the old password while an admin resets it, or
/// begun before an admin disabled the account, never outlive that change: a login
/// checked against the old password and a refresh of an old session, racing the
/// reset, leave no refresh token that still works (on PostgreSQL this needs the account
/// lock every one of them takes first).
pub async fn a_password_reset_leaves_no_session_behind(store: Arc<dyn Store>) {
    use crate::service::users::{LoginAttempt, StaffUpdate};
    let engine = manual_engine(&store);
    engine
        .bootstrap_admin("root@shop.kr", "root-password")
        .await
        .unwrap();
    let root = engine
        .login(LoginAttempt {
            email: "root@shop.kr",
            password: "root-password",
            client_ip: None,
            staff_only: true,
        })
        .await
        .unwrap()
        .customer;
    let root = crate::auth::Principal {
        id: root.id,
        email: root.email,
        role: Role::Admin,
    };
    let racer = engine
        .create_staff(&root, "racer@shop.kr", "pass-0-long", Role::Operator)
        .await
        .unwrap();
    let login = |password: String| {
        let engine = engine.clone();
        async move {
            engine
                .login(LoginAttempt {
                    email: "racer@shop.kr",
                    password: &password,
                    client_ip: None,
                    staff_only: true,
                })
                .await
        }
    };
    for round in 0..6 {
        let (old, new) = (
            format!("pass-{round}-long"),
            format!("pass-{}-long", round + 1),
        );
        let before = login(old.clone()).await.unwrap();
        let reset = {
            let (engine, root) = (engine.clone(), root.clone());
            let change = StaffUpdate {
                password: Some(new),
                ..Default::default()
            };
            tokio::spawn(async move { engine.update_staff(&root, racer.id, change).await })
        };
        let (signed_in, refreshed) =
            tokio::join!(login(old), engine.refresh(&before.refresh_token));
        reset.await.unwrap().unwrap();
        for (what, pair) in [("login", signed_in), ("refresh", refreshed)] {
            if let Ok(pair) = pair {
                assert!(
                    engine.refresh(&pair.refresh_token).await.is_err(),
                    "round {round}: a {what} with the old password outlived the reset"
                );
                // Its access token too, however close to the reset it was issued.
                let claims = engine.tokens().verify_claims(&pair.access_token).unwrap();
                assert!(
                    engine.session(&claims).await.is_err(),
                    "round {round}: a {what}'s access token outlived the reset"
                );
            }
        }
    }

    // Disabled, then enabled again: a session from before the disable stays dead, on
    // the admin API too; a new login works.
    let session = |pair: &crate::service::users::TokenPair| {
        engine.tokens().verify_claims(&pair.access_token).unwrap()
    };
    let before = login("pass-6-long".into()).await.unwrap();
    assert!(engine.staff_session(&session(&before)).await.is_ok());
    for disabled in [true, false] {
        let change = StaffUpdate {
            disabled: Some(disabled),
            ..Default::default()
        };
        engine.update_staff(&root, racer.id, change).await.unwrap();
    }
    assert!(engine.staff_session(&session(&before)).await.is_err());
    assert!(engine.refresh(&before.refresh_token).await.is_err());
    let after = login("pass-6-long".into()).await.unwrap();
    assert!(engine.staff_session(&session(&after)).await.is_ok());

    // A change in the very instant a token was issued (a clock that stands still;
    // the same millisecond on a real one, or an instance whose clock runs behind)
    // still ends that token's session, and the token the change hands out works.
    let clock = Arc::new(crate::clock::ManualClock::new(now()));
    let frozen = crate::EngineBuilder::new(store.clone(), vec![7u8; 32])
        .payments(
            crate::payment::PaymentRegistry::new().register(Arc::new(RedeliveringProvider {
                name: "manual",
                order: OrderId::new(),
                amount: Money::zero(Currency::KRW),
            })),
        )
        .clock(clock)
        .build()
        .unwrap();
    frozen
        .register("frozen@example.com", "frozen-pass-1")
        .await
        .unwrap();
    let buyer_login = || {
        frozen.login(LoginAttempt {
            email: "frozen@example.com",
            password: "frozen-pass-1",
            client_ip: None,
            staff_only: false,
        })
    };
    let (phone, laptop) = (buyer_login().await.unwrap(), buyer_login().await.unwrap());
    let claims = |p: &crate::service::users::TokenPair| {
        frozen.tokens().verify_claims(&p.access_token).unwrap()
    };
    assert!(frozen.session(&claims(&phone)).await.is_ok());
    let who = frozen.session(&claims(&laptop)).await.unwrap();
    let fresh = frozen
        .change_password(&who, "frozen-pass-1", "frozen-pass-2")
        .await
        .unwrap();
    assert!(
        frozen.session(&claims(&phone)).await.is_err(),
        "a token from the instant of the change outlived it"
    );
    assert!(frozen.session(&claims(&fresh)).await.is_ok());
    let racer_now = frozen.session(&session(&after)).await.unwrap();
    assert_eq!(racer_now.id, racer.id);
    frozen
        .update_staff(
            &root,
            racer.id,
            StaffUpdate {
                password: Some("pass-7-long".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(frozen.staff_session(&session(&after)).await.is_err());
}

/// An engine on `store` whose one payment provider is `provider`.
fn engine_paying_with(
    store: &Arc<dyn Store>,
    provider: Arc<dyn crate::payment::PaymentProvider>,
) -> crate::Engine {
    crate::EngineBuilder::new(store.clone(), vec![7u8; 32])
        .payments(crate::payment::PaymentRegistry::new().register(provider))
        .build()
        .unwrap()
}

/// An engine on `store` with a `manual` provider that refunds at once.
fn manual_engine(store: &Arc<dyn Store>) -> crate::Engine {
    let provider = RedeliveringProvider {
        name: "manual",
        order: OrderId::new(),
        amount: Money::zero(Currency::KRW),
    };
    engine_paying_with(store, Arc::new(provider))
}

/// The stored order `id`, which must exist.
async fn stored_order(store: &Arc<dyn Store>, id: OrderId) -> Order {
    store
        .read()
        .await
        .unwrap()
        .order(id)
        .await
        .unwrap()
        .unwrap()
}

/// Expands to one `#[tokio::test]` per contract check. `$make` is an async expression
/// evaluating to a fresh, empty `Arc<dyn Store>`.
#[macro_export]
macro_rules! storage_contract_tests {
    ($make:expr) => {
        $crate::storage_contract_tests!(@each $make;
            products_round_trip, duplicates_are_conflicts, update_keeps_variant_ids_and_delete_removes,
            variants_may_swap_skus,
            search_finds_korean_english_and_indonesian, filters_sorts_and_pages, stock_never_goes_negative,
            concurrent_reservations_are_exact, dropped_transactions_roll_back, carts_round_trip_and_expire,
            staff_accounts_change_and_lose_their_tokens,
            orders_round_trip_list_and_expire, accounts_tokens_idempotency_audit, outbox_keeps_commit_order,
            outbox_lease_has_one_holder, outbox_lease_is_released_by_its_holder_only,
            a_stopped_relay_hands_the_lease_over, projections_apply_once, store_notifications_apply_once,
            consumer_batches_apply_once, product_facts_round_trip,
            rule_documents_are_versioned, buyer_orders_add_up_one_buyer,
            lock_buyer_serializes_a_buyer, a_cart_read_in_a_transaction_holds_it,
            place_order_writes_all_or_yields_to_a_stored_key, place_order_takes_every_line_of_a_full_cart,
            outbox_pending_skips_rows_in_flight,
            relay_publishes_in_order_and_marks_what_was_acknowledged,
            a_hundred_products_read_at_once, cart_for_checkout_reads_cart_and_variants,
            an_order_read_in_a_transaction_holds_it, late_payment_deliveries_race_to_one_event,
            a_decline_recorded_while_the_order_expires_does_not_deadlock,
            a_refresh_token_replayed_at_once_leaves_no_valid_successor,
            confirm_and_cancel_racing_never_keep_money_unrefunded,
            a_refunding_cancellation_holds_off_fulfilment,
            a_password_reset_leaves_no_session_behind, a_slow_publish_keeps_the_lease);
    };
    (@each $make:expr; $($name:ident),*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let store = $make.await;
                $crate::testkit::$name(store).await;
            }
        )*
    };
}

/// A cart read inside a transaction holds the cart until commit, and the second reader
/// then sees what the first wrote (two checkouts of one cart place one order).
pub async fn a_cart_read_in_a_transaction_holds_it(store: Arc<dyn Store>) {
    let c = cart(Duration::hours(1));
    let mut tx = store.begin().await.unwrap();
    tx.save_cart(&c).await.unwrap();
    tx.commit().await.unwrap();

    let mut first = store.begin().await.unwrap();
    let mut mine = first.cart(c.id).await.unwrap().unwrap();
    let reader = store.clone();
    let seen = second_reader_waits(
        async move {
            let mut tx = reader.begin().await.unwrap();
            // Checkout's read, which must wait on the lock as `cart` does.
            let (seen, _) = tx.cart_for_checkout(c.id).await.unwrap().unwrap();
            seen.status
        },
        async move {
            mine.status = CartStatus::Completed;
            first.save_cart(&mine).await.unwrap();
            first.commit().await.unwrap();
        },
    )
    .await;
    assert_eq!(seen, CartStatus::Completed, "it reads the committed cart");
}

/// An order read inside a transaction holds the order until commit, and the second
/// reader then sees what the first wrote (a webhook delivered twice at once applies once).
pub async fn an_order_read_in_a_transaction_holds_it(store: Arc<dyn Store>) {
    let o = order(None, OrderStatus::Pending, Duration::hours(1));
    let mut tx = store.begin().await.unwrap();
    tx.insert_order(&o).await.unwrap();
    tx.commit().await.unwrap();

    let mut first = store.begin().await.unwrap();
    let mut mine = first.order(o.id).await.unwrap().unwrap();
    let reader = store.clone();
    let seen = second_reader_waits(
        async move {
            let mut tx = reader.begin().await.unwrap();
            tx.order(o.id).await.unwrap().unwrap().status
        },
        async move {
            mine.status = OrderStatus::Paid;
            assert!(first
                .update_order_if(&mine, OrderStatus::Pending)
                .await
                .unwrap());
            first.commit().await.unwrap();
        },
    )
    .await;
    assert_eq!(seen, OrderStatus::Paid, "it reads the committed order");
}

/// Runs `read` (a second transaction reading a row the first one holds) beside the
/// first: asserts that it waits until `commit_first` has run, and returns what it read.
async fn second_reader_waits<T: Send + 'static>(
    read: impl std::future::Future<Output = T> + Send + 'static,
    commit_first: impl std::future::Future<Output = ()>,
) -> T {
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let second = {
        let done = done.clone();
        tokio::spawn(async move {
            let seen = read.await;
            done.store(true, std::sync::atomic::Ordering::SeqCst);
            seen
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(
        !done.load(std::sync::atomic::Ordering::SeqCst),
        "a second transaction reading the row waits"
    );
    commit_first.await;
    tokio::time::timeout(std::time::Duration::from_secs(10), second)
        .await
        .expect("the second transaction goes on after the first commits")
        .unwrap()
}

/// An open cart, stored, and a paid order for it with the cart as checkout leaves it
/// (completed, pointing at the order; not stored).
async fn open_cart_and_its_order(store: &Arc<dyn Store>) -> (Cart, Order) {
    let mut c = cart(Duration::hours(1));
    let mut tx = store.begin().await.unwrap();
    tx.save_cart(&c).await.unwrap();
    tx.commit().await.unwrap();
    let o = order(None, OrderStatus::Paid, Duration::minutes(30));
    c.status = CartStatus::Completed;
    c.order_id = Some(o.id);
    (c, o)
}

/// `Tx::place_order` takes the stock and writes the order, the cart, the key and the
/// events together; it yields to a key another request stored, and reports a variant
/// without enough stock; either way nothing of the attempt is kept.
pub async fn place_order_writes_all_or_yields_to_a_stored_key(store: Arc<dyn Store>) {
    use crate::ports::{PlacedOrder, Placement, StockTake};
    let p = product(
        "place-order",
        &[("en", "Placed")],
        &[("PO-1", 1000, 5), ("PO-2", 1000, 2)],
    );
    insert(&store, &p).await;
    let (v1, v2) = (p.variants[0].id, p.variants[1].id);
    let mut takes = [
        StockTake {
            variant: v1,
            quantity: 2,
        },
        StockTake {
            variant: v2,
            quantity: 1,
        },
    ];
    takes.sort_by_key(|t| t.variant);
    let stock_of = |store: Arc<dyn Store>, v: VariantId| async move {
        let mut r = store.read().await.unwrap();
        r.variants(&[v]).await.unwrap()[0].variant.stock
    };

    let (c, o) = open_cart_and_its_order(&store).await;
    let events: Vec<_> = ["order.placed", "order.paid"]
        .into_iter()
        .map(|t| DomainEvent::new(t, "order", o.id, now(), serde_json::json!({"t": t})))
        .collect();
    let key = IdempotencyRecord {
        scope: "checkout".into(),
        key: "place-1".into(),
        fingerprint: c.id.to_string(),
        resource_id: o.id.to_string(),
        created_at: now(),
    };
    let placed = PlacedOrder {
        order: &o,
        cart: &c,
        idempotency: Some(&key),
        events: &events,
        stock: &takes,
    };
    let mut tx = store.begin().await.unwrap();
    let left = |v: VariantId| if v == v1 { 3 } else { 1 };
    assert_eq!(
        tx.place_order(&placed).await.unwrap(),
        Placement::Placed {
            stock_left: takes.iter().map(|t| left(t.variant)).collect()
        },
        "a new key, stock enough; what is left, in the order of the takes"
    );
    tx.commit().await.unwrap();
    let mut r = store.read().await.unwrap();
    assert_eq!(r.order(o.id).await.unwrap().unwrap(), o);
    assert_eq!(r.cart(c.id).await.unwrap().unwrap(), c);
    assert_eq!(
        r.idempotency("checkout", "place-1").await.unwrap(),
        Some(key.clone())
    );
    drop(r);
    assert_eq!(stock_of(store.clone(), v1).await, 3, "two taken");
    assert_eq!(stock_of(store.clone(), v2).await, 1, "one taken");
    let rows = store.outbox_pending(10).await.unwrap();
    assert_eq!(
        rows.iter().map(|r| r.event.clone()).collect::<Vec<_>>(),
        events,
        "the events, in order"
    );

    // The same key again (a retry that raced the first): nothing of it is kept.
    let (other_cart, second) = open_cart_and_its_order(&store).await;
    let more = vec![DomainEvent::new(
        "order.placed",
        "order",
        second.id,
        now(),
        serde_json::json!({}),
    )];
    let mut tx = store.begin().await.unwrap();
    let yielded = tx
        .place_order(&PlacedOrder {
            order: &second,
            cart: &other_cart,
            idempotency: Some(&key),
            events: &more,
            stock: &takes,
        })
        .await
        .unwrap();
    assert_eq!(
        yielded,
        Placement::KeyTaken,
        "the key was stored by the first request"
    );
    drop(tx);
    let mut r = store.read().await.unwrap();
    assert!(r.order(second.id).await.unwrap().is_none());
    assert_eq!(
        r.cart(other_cart.id).await.unwrap().unwrap().status,
        CartStatus::Open
    );
    drop(r);
    assert_eq!(store.outbox_pending(10).await.unwrap().len(), 2);
    assert_eq!(stock_of(store.clone(), v1).await, 3, "nothing taken");

    // More than is left of one variant: reported, and nothing is kept.
    let mut short = takes;
    for t in &mut short {
        if t.variant == v2 {
            t.quantity = 2;
        }
    }
    let mut tx = store.begin().await.unwrap();
    let got = tx
        .place_order(&PlacedOrder {
            order: &second,
            cart: &other_cart,
            idempotency: None,
            events: &more,
            stock: &short,
        })
        .await
        .unwrap();
    assert_eq!(got, Placement::OutOfStock(v2));
    drop(tx);
    assert_eq!(
        stock_of(store.clone(), v1).await,
        3,
        "the other line rolled back"
    );
    assert_eq!(stock_of(store.clone(), v2).await, 1, "never below zero");
    assert!(store
        .read()
        .await
        .unwrap()
        .order(second.id)
        .await
        .unwrap()
        .is_none());

    // Without a key, and without stock (an order of nothing but the write).
    let mut tx = store.begin().await.unwrap();
    assert_eq!(
        tx.place_order(&PlacedOrder {
            order: &second,
            cart: &other_cart,
            idempotency: None,
            events: &more,
            stock: &[],
        })
        .await
        .unwrap(),
        Placement::Placed { stock_left: vec![] }
    );
    tx.commit().await.unwrap();
    let mut r = store.read().await.unwrap();
    assert_eq!(r.order(second.id).await.unwrap().unwrap(), second);
    assert_eq!(r.cart(other_cart.id).await.unwrap().unwrap(), other_cart);
    drop(r);
    assert_eq!(store.outbox_pending(10).await.unwrap().len(), 3);
}

/// `Tx::place_order` with as many stock rows as a cart can hold (`MAX_LINES`) and with
/// a count that is not a power of two: every row is taken once, the stock left comes
/// back in the order of the takes, and a short row anywhere refuses the whole order.
pub async fn place_order_takes_every_line_of_a_full_cart(store: Arc<dyn Store>) {
    use crate::ports::{PlacedOrder, Placement, StockTake};
    let n = crate::cart::MAX_LINES;
    let variants: Vec<(String, i64, i64)> = (0..n)
        .map(|i| (format!("FULL-{i:03}"), 1000, 10 + i as i64))
        .collect();
    let refs: Vec<(&str, i64, i64)> = variants
        .iter()
        .map(|(sku, krw, stock)| (sku.as_str(), *krw, *stock))
        .collect();
    let p = product("full-cart", &[("en", "Full")], &refs);
    insert(&store, &p).await;
    let mut takes: Vec<StockTake> = p
        .variants
        .iter()
        .map(|v| StockTake {
            variant: v.id,
            quantity: 2,
        })
        .collect();
    takes.sort_by_key(|t| t.variant);
    let stock_before = |v: VariantId| p.variants.iter().find(|x| x.id == v).unwrap().stock;

    // A new order for a new cart taking `stock`, in a transaction left open.
    async fn attempt(
        store: &Arc<dyn Store>,
        stock: &[StockTake],
    ) -> (Box<dyn crate::ports::Tx>, OrderId, Placement) {
        let (c, o) = open_cart_and_its_order(store).await;
        let mut tx = store.begin().await.unwrap();
        let placement = tx
            .place_order(&PlacedOrder {
                order: &o,
                cart: &c,
                idempotency: None,
                events: &[],
                stock,
            })
            .await
            .unwrap();
        (tx, o.id, placement)
    }

    for count in [n, 3] {
        let (tx, _, got) = attempt(&store, &takes[..count]).await;
        assert_eq!(
            got,
            Placement::Placed {
                stock_left: takes[..count]
                    .iter()
                    .map(|t| stock_before(t.variant) - 2 * if count == 3 { 2 } else { 1 })
                    .collect()
            },
            "{count} rows"
        );
        tx.commit().await.unwrap();
    }

    // One row in the middle asks for one unit more than is left: refused, and
    // nothing kept, though the other 99 rows had enough.
    let short = takes[n / 2].variant;
    let mut third = takes.clone();
    third[n / 2].quantity = stock_before(short) - 2 + 1;
    let (tx, order, got) = attempt(&store, &third).await;
    assert_eq!(got, Placement::OutOfStock(short));
    drop(tx);
    let mut r = store.read().await.unwrap();
    assert!(r.order(order).await.unwrap().is_none());
    let ids: Vec<VariantId> = takes.iter().map(|t| t.variant).collect();
    let snaps = r.variants(&ids).await.unwrap();
    assert_eq!(snaps.len(), n);
    let taken_twice: Vec<VariantId> = takes[..3].iter().map(|t| t.variant).collect();
    for s in snaps {
        let taken = if taken_twice.contains(&s.variant.id) {
            4
        } else {
            2
        };
        assert_eq!(
            s.variant.stock,
            stock_before(s.variant.id) - taken,
            "{}: the refused order took nothing",
            s.variant.sku
        );
    }
}

/// A broker that takes its time to acknowledge.
#[derive(Debug)]
struct SlowPublisher(std::time::Duration);

#[async_trait::async_trait]
impl crate::events::EventPublisher for SlowPublisher {
    async fn publish(&self, _: &[DomainEvent]) -> crate::CoreResult<()> {
        tokio::time::sleep(self.0).await;
        Ok(())
    }
}

/// A publish that takes longer than the lease keeps it: the relay renews it while the
/// broker holds the batch, so a short lease (a dead relay hands over quickly) never
/// lets a second relay publish the same batch beside a slow one.
pub async fn a_slow_publish_keeps_the_lease(store: Arc<dyn Store>) {
    let mut tx = store.begin().await.unwrap();
    tx.append_events(&placed_events(3, 3)).await.unwrap();
    tx.commit().await.unwrap();
    let ttl = std::time::Duration::from_secs(1);
    // Two batches of 1.5 s each: while the second is with the broker the relay also
    // marks the first sent, beside the renewals (on SQLite both need the one writer).
    let relay = crate::events::OutboxRelay::new(
        store.clone(),
        Arc::new(SlowPublisher(ttl * 3 / 2)),
        Arc::new(tokio::sync::Notify::new()),
    )
    .batch(2)
    .lease_ttl(ttl);
    let drain = tokio::spawn(async move { relay.drain().await });
    // 1.3 s and 2.3 s into 3 s of publishing, past one and two lease lengths, the
    // lease is still taken.
    for (step, at) in [(ttl + ttl / 3, "1.3 s"), (ttl, "2.3 s")] {
        tokio::time::sleep(step).await;
        assert!(
            !store.outbox_lease("another-relay", ttl).await.unwrap(),
            "another relay took the lease {at} into a slow publish"
        );
    }
    assert_eq!(drain.await.unwrap().unwrap(), 3);
    assert!(store.outbox_pending(10).await.unwrap().is_empty());
}

/// Publishes batches and records them; the `fail_at`-th call fails (the broker down).
#[derive(Debug, Default)]
struct RecordingPublisher {
    batches: std::sync::Mutex<Vec<Vec<EventId>>>,
    calls: std::sync::atomic::AtomicUsize,
    fail_at: Option<usize>,
}

#[async_trait::async_trait]
impl crate::events::EventPublisher for RecordingPublisher {
    async fn publish(&self, events: &[DomainEvent]) -> crate::CoreResult<()> {
        let call = self.calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
        if Some(call) == self.fail_at {
            return Err(CoreError::Unavailable("broker down".into()));
        }
        self.batches
            .lock()
            .unwrap()
            .push(events.iter().map(|e| e.id).collect());
        Ok(())
    }
}

/// A relay that stops hands the lease over: the next relay (a rolling restart's
/// replacement) publishes at once instead of waiting out the stopped one's 15 s lease.
pub async fn a_stopped_relay_hands_the_lease_over(store: Arc<dyn Store>) {
    let append = |events: Vec<DomainEvent>| {
        let store = store.clone();
        async move {
            let mut tx = store.begin().await.unwrap();
            tx.append_events(&events).await.unwrap();
            tx.commit().await.unwrap();
        }
    };
    let first = Arc::new(RecordingPublisher::default());
    let wake = Arc::new(tokio::sync::Notify::new());
    let relay = crate::events::OutboxRelay::new(store.clone(), first.clone(), wake.clone());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(relay.run(std::time::Duration::from_millis(50), async move {
        let _ = stopped.await;
    }));
    append(placed_events(5, 5)).await;
    wake.notify_one();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while first.batches.lock().unwrap().concat().len() < 5 {
        assert!(
            std::time::Instant::now() < deadline,
            "the first relay never published"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    stop.send(()).unwrap();
    running.await.unwrap();

    append(placed_events(3, 3)).await;
    let second = Arc::new(RecordingPublisher::default());
    let next = crate::events::OutboxRelay::new(
        store.clone(),
        second.clone(),
        Arc::new(tokio::sync::Notify::new()),
    );
    assert_eq!(
        next.drain().await.unwrap(),
        3,
        "the next relay publishes at once (the stopped one's lease would run 15 s)"
    );
    assert_eq!(second.batches.lock().unwrap().concat().len(), 3);
}

/// `outbox_pending_skipping` leaves out the rows in flight and still fills the batch.
pub async fn outbox_pending_skips_rows_in_flight(store: Arc<dyn Store>) {
    let events = placed_events(10, 10);
    let mut tx = store.begin().await.unwrap();
    tx.append_events(&events).await.unwrap();
    tx.commit().await.unwrap();
    let first = store.outbox_pending(4).await.unwrap();
    let in_flight: Vec<i64> = first.iter().map(|r| r.seq).collect();
    let next = store.outbox_pending_skipping(4, &in_flight).await.unwrap();
    assert_eq!(
        next.iter().map(|r| r.event.id).collect::<Vec<_>>(),
        events[4..8].iter().map(|e| e.id).collect::<Vec<_>>()
    );
    let skip_some = [in_flight[1], in_flight[3]];
    let rows = store.outbox_pending_skipping(3, &skip_some).await.unwrap();
    assert_eq!(
        rows.iter().map(|r| r.event.id).collect::<Vec<_>>(),
        vec![events[0].id, events[2].id, events[4].id]
    );
}

/// The relay (whose batches overlap) publishes every row in commit order, marks what
/// the broker acknowledged even when a later batch fails, and sends the rest next time.
pub async fn relay_publishes_in_order_and_marks_what_was_acknowledged(store: Arc<dyn Store>) {
    let events = placed_events(1050, 37);
    for chunk in events.chunks(350) {
        let mut tx = store.begin().await.unwrap();
        tx.append_events(chunk).await.unwrap();
        tx.commit().await.unwrap();
    }
    let publisher = Arc::new(RecordingPublisher {
        fail_at: Some(4),
        ..Default::default()
    });
    let relay = crate::events::OutboxRelay::new(
        store.clone(),
        publisher.clone(),
        Arc::new(tokio::sync::Notify::new()),
    )
    .batch(100);
    relay.drain().await.unwrap_err();
    assert_eq!(
        publisher.batches.lock().unwrap().concat().len(),
        300,
        "three batches before the failure"
    );
    assert_eq!(
        store.outbox_pending(2000).await.unwrap().len(),
        750,
        "the acknowledged batches are marked sent"
    );
    assert_eq!(relay.drain().await.unwrap(), 750, "the broker is back");
    assert!(store.outbox_pending(10).await.unwrap().is_empty());
    assert_eq!(
        publisher.batches.lock().unwrap().concat(),
        events.iter().map(|e| e.id).collect::<Vec<_>>(),
        "every event once, in commit order"
    );
}
