//! Use cases, as `impl Engine` blocks grouped by aggregate.

pub mod carts;
pub mod catalog;
pub mod checkout;
pub mod compliance;
pub mod orders;
pub mod reports;
pub mod users;
