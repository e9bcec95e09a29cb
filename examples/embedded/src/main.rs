//! Embedding Jangteo as a library: the core and the SQLite adapter, no HTTP.
//!
//! A company with its own Rust application wires the engine like this, then calls the
//! use cases directly. Run it with `cargo run -p jangteo-example-embedded`.

use std::sync::Arc;

use jangteo_core::auth::Principal;
use jangteo_core::catalog::ProductInput;
use jangteo_core::customer::Role;
use jangteo_core::events::InProcessBus;
use jangteo_core::ids::CustomerId;
use jangteo_core::payment::PaymentRegistry;
use jangteo_core::service::carts::{CartUpdate, NewCart};
use jangteo_core::service::catalog::ProductSearch;
use jangteo_core::service::checkout::PaymentChoice;
use jangteo_core::{cart::Address, EngineBuilder};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // 1. Storage: a SQLite file (migrations run on open). `sqlite::memory:` works too.
    let dir = std::env::temp_dir().join(format!("jangteo-embedded-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let store = jangteo_sql::open(
        &format!("sqlite://{}", dir.join("shop.db").display()),
        &Default::default(),
    )
    .await?;

    // 2. The engine: storage, payment providers (registered by name), a JWT secret.
    let engine = EngineBuilder::new(store, b"an-example-secret-of-at-least-32-bytes".to_vec())
        .payments(
            PaymentRegistry::new()
                .register(jangteo_payment_manual::ManualConfig::default().build()),
        )
        // Country plugins bring each destination's rules and tax. Register every
        // country you sell into: with none at all, compliance is off and tax is zero.
        .country(Arc::new(jangteo_country_kr::Korea))
        .build()?;

    // 3. Events: relay the outbox to an in-process bus and listen.
    let bus = InProcessBus::default();
    let mut events = bus.subscribe();
    let relay = engine.outbox_relay(Arc::new(bus));

    // 4. An operator creates a product (writes are audit-logged under this principal).
    let operator = Principal {
        id: CustomerId::new(),
        email: "ops@example.com".into(),
        role: Role::Operator,
    };
    let input: ProductInput = serde_json::from_value(serde_json::json!({
        "handle": "red-ginseng-stick", "status": "published",
        "title": {"ko": "홍삼 스틱", "en": "Red ginseng stick", "id": "Stik ginseng merah"},
        "categories": ["ginseng"],
        "variants": [{"sku": "RG-30", "prices": [{"amount": "39000", "currency": "KRW"}], "stock": 100}]
    }))?;
    let product = engine.create_product(&operator, input).await?;
    println!("created {} ({})", product.handle, product.id);

    // 5. A buyer finds it with a two-syllable Korean word, fills a cart and orders.
    let found = engine
        .search_products(&ProductSearch {
            q: Some("홍삼".into()),
            ..Default::default()
        })
        .await?;
    let variant = found.products[0].variants[0].id;
    let cart = engine
        .create_cart(
            NewCart {
                country: "KR".into(),
                currency: "KRW".into(),
                locale: Some("ko".into()),
            },
            None,
        )
        .await?;
    engine.add_line(cart.cart.id, variant, 2, None).await?;
    let address = Address {
        name: "김민지".into(),
        line1: "세종대로 110".into(),
        city: "서울".into(),
        postal_code: "04524".into(),
        country: "KR".into(),
        ..Default::default()
    };
    engine
        .update_cart(
            cart.cart.id,
            CartUpdate {
                email: Some("minji@example.com".into()),
                shipping_address: Some(address),
                ..Default::default()
            },
            None,
        )
        .await?;
    let placed = engine
        .complete_cart(
            cart.cart.id,
            Some("example-checkout-1"),
            PaymentChoice::default(),
            None,
        )
        .await?;
    println!(
        "order {} is {} for {}",
        placed.order.number,
        placed.order.status.as_str(),
        placed.order.totals.total
    );
    assert_eq!(placed.order.status.as_str(), "paid");
    assert_eq!(
        placed.order.totals.total.amount,
        rust_decimal::Decimal::from(78_000)
    );
    // Korean VAT is included in the shelf price: 78,000 won holds 7,091 won of it.
    assert!(placed.order.totals.tax_included);
    println!("of which VAT {}", placed.order.totals.tax);

    // 6. Deliver the events and show them.
    let sent = relay.drain().await?;
    let mut types = Vec::new();
    while let Ok(e) = events.try_recv() {
        types.push(e.event_type.clone());
    }
    println!("{sent} events delivered: {}", types.join(", "));
    assert!(types.contains(&"order.paid".to_string()));

    std::fs::remove_dir_all(&dir).ok();
    Ok(())
}
