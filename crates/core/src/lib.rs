//! # jangteo-core
//!
//! The domain of Jangteo, a headless commerce engine for regulated goods sold across
//! borders: money, catalog, inventory, carts, checkout, orders, customers and events,
//! with the ports (traits) that storage, event, payment and courier adapters implement.
//!
//! This crate has no dependency on a database, web framework or broker. Wire an
//! [`Engine`] from a [`ports::Store`] (for example `jangteo_sql::SqliteStore`) and at
//! least one [`payment::PaymentProvider`]:
//!
//! ```no_run
//! # async fn demo(store: std::sync::Arc<dyn jangteo_core::ports::Store>,
//! #               manual: std::sync::Arc<dyn jangteo_core::payment::PaymentProvider>) -> Result<(), jangteo_core::CoreError> {
//! use jangteo_core::{EngineBuilder, payment::PaymentRegistry};
//! let engine = EngineBuilder::new(store, vec![0u8; 32])
//!     .payments(PaymentRegistry::new().register(manual))
//!     .build()?;
//! let page = engine.search_products(&Default::default()).await?;
//! println!("{} products", page.products.len());
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

pub mod auth;
pub mod cache;
pub mod cart;
pub mod catalog;
pub mod clock;
pub mod compliance;
pub mod consumers;
pub mod customer;
pub mod engine;
pub mod error;
pub mod events;
pub mod i18n;
pub mod ids;
pub mod locale;
pub mod money;
pub mod order;
pub mod payment;
pub mod ports;
pub mod pricing;
pub mod service;
#[cfg(feature = "testkit")]
pub mod testkit;

pub use engine::{Engine, EngineBuilder, EngineSettings};
pub use error::{CoreError, CoreResult, FieldError};
