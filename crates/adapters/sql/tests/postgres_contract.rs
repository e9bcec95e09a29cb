//! The storage contract suite against a real PostgreSQL, one fresh database per test,
//! plus what only a server with many connections can show.

use std::sync::Arc;

use jangteo_core::ports::Store;
use jangteo_sql::PostgresStore;

fn admin_url() -> String {
    std::env::var("JANGTEO_TEST_POSTGRES_URL").expect(
        "JANGTEO_TEST_POSTGRES_URL is not set: run ./scripts/test, or `scripts/stack up` and source its env",
    )
}

async fn fresh_url() -> String {
    let name = format!("jt_{}", uuid::Uuid::now_v7().simple());
    PostgresStore::create_database(&admin_url(), &name)
        .await
        .expect("create a test database on JANGTEO_TEST_POSTGRES_URL")
}

async fn fresh() -> Arc<dyn Store> {
    let settings = jangteo_sql::PoolSettings {
        max_connections: 60,
        ..Default::default()
    };
    jangteo_sql::open(&fresh_url().await, &settings)
        .await
        .expect("open postgres")
}

jangteo_core::storage_contract_tests!(fresh());

#[tokio::test]
async fn a_non_utf8_database_is_refused() {
    let admin = admin_url();
    let name = format!("jt_{}", uuid::Uuid::now_v7().simple());
    let store = jangteo_sql::open(&admin, &Default::default()).await;
    drop(store);
    let opts: sqlx::postgres::PgConnectOptions = admin.parse().unwrap();
    let mut conn = sqlx::ConnectOptions::connect(&opts).await.unwrap();
    sqlx::query(&format!(
        "CREATE DATABASE {name} TEMPLATE template0 ENCODING 'SQL_ASCII' LC_COLLATE 'C' LC_CTYPE 'C'"
    ))
    .execute(&mut conn)
    .await
    .unwrap();
    let url = format!("{}/{name}", admin.rsplit_once('/').unwrap().0);
    let err = jangteo_sql::open(&url, &Default::default())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("UTF8"), "{err}");
}

#[tokio::test]
async fn an_unreachable_server_is_a_connect_error() {
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let settings = jangteo_sql::PoolSettings {
        acquire_timeout: std::time::Duration::from_secs(2),
        ..Default::default()
    };
    let err = jangteo_sql::open(
        &format!("postgres://postgres@127.0.0.1:{port}/x"),
        &settings,
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("cannot connect"), "{err}");
}
