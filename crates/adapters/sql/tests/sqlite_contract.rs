//! The storage contract suite against SQLite files in a temporary folder.

use std::sync::Arc;

use jangteo_core::ports::Store;

async fn fresh() -> Arc<dyn Store> {
    let dir = std::env::temp_dir().join(format!("jangteo-contract-{}", uuid::Uuid::now_v7()));
    std::fs::create_dir_all(&dir).unwrap();
    let url = format!("sqlite://{}", dir.join("test.db").display());
    jangteo_sql::open(&url, &Default::default())
        .await
        .expect("open sqlite")
}

jangteo_core::storage_contract_tests!(fresh());

#[tokio::test]
async fn an_unknown_url_is_a_clear_error() {
    let err = jangteo_sql::open("mysql://x", &Default::default())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("unsupported"), "{err}");
}

#[tokio::test]
async fn in_memory_databases_work() {
    let store = jangteo_sql::open("sqlite::memory:", &Default::default())
        .await
        .unwrap();
    jangteo_core::testkit::products_round_trip(store).await;
}
