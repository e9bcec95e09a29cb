//! Trait implementations shared by the backends.
//!
//! Each backend has free functions with the same names and shapes (taking its own
//! connection type); these macros implement the read ports on a backend's transaction
//! and reader types by calling them, so the delegation is written once. PostgreSQL's
//! functions are async (sqlx); SQLite's are plain functions (rusqlite runs them on the
//! calling thread), hence the `sync` form.

/// Implements `CatalogRead` by calling the backend's catalog functions.
#[macro_export]
#[doc(hidden)]
macro_rules! catalog_read {
    (@ $t:ty; $($aw:tt)*) => {
        #[::async_trait::async_trait]
        impl ::jangteo_core::ports::CatalogRead for $t {
            async fn product(
                &mut self,
                id: ::jangteo_core::ids::ProductId,
            ) -> ::jangteo_core::CoreResult<Option<::jangteo_core::catalog::Product>> {
                product(self.conn(), id) $($aw)*
            }
            async fn product_by_handle(
                &mut self,
                handle: &str,
            ) -> ::jangteo_core::CoreResult<Option<::jangteo_core::catalog::Product>> {
                product_by_handle(self.conn(), handle) $($aw)*
            }
            async fn products(
                &mut self,
                query: &::jangteo_core::catalog::ProductQuery,
            ) -> ::jangteo_core::CoreResult<::jangteo_core::catalog::ProductPage> {
                products(self.conn(), query) $($aw)*
            }
            async fn categories(
                &mut self,
            ) -> ::jangteo_core::CoreResult<Vec<::jangteo_core::catalog::Category>> {
                categories(self.conn()) $($aw)*
            }
            async fn variants(
                &mut self,
                ids: &[::jangteo_core::ids::VariantId],
            ) -> ::jangteo_core::CoreResult<Vec<::jangteo_core::catalog::VariantSnapshot>> {
                variants(self.conn(), ids) $($aw)*
            }
        }
    };
    ($t:ty) => {
        $crate::catalog_read!(@ $t; .await);
    };
    ($t:ty, sync) => {
        $crate::catalog_read!(@ $t;);
    };
}

/// Implements the other read ports by calling the backend's functions.
#[macro_export]
#[doc(hidden)]
macro_rules! commerce_read {
    (@ $t:ty; $cart:ident; $order:ident; $customer:ident; $($aw:tt)*) => {
        #[::async_trait::async_trait]
        impl ::jangteo_core::ports::CartRead for $t {
            async fn cart(
                &mut self,
                id: ::jangteo_core::ids::CartId,
            ) -> ::jangteo_core::CoreResult<Option<::jangteo_core::cart::Cart>> {
                $cart(self.conn(), id) $($aw)*
            }
        }

        #[::async_trait::async_trait]
        impl ::jangteo_core::ports::OrderRead for $t {
            async fn order(
                &mut self,
                id: ::jangteo_core::ids::OrderId,
            ) -> ::jangteo_core::CoreResult<Option<::jangteo_core::order::Order>> {
                $order(self.conn(), id) $($aw)*
            }
            async fn orders(
                &mut self,
                query: &::jangteo_core::order::OrderQuery,
            ) -> ::jangteo_core::CoreResult<Vec<::jangteo_core::order::Order>> {
                orders(self.conn(), query) $($aw)*
            }
            async fn expired_pending_orders(
                &mut self,
                now: ::chrono::DateTime<::chrono::Utc>,
                limit: u32,
            ) -> ::jangteo_core::CoreResult<Vec<::jangteo_core::ids::OrderId>> {
                expired_pending(self.conn(), now, limit) $($aw)*
            }
        }

        #[::async_trait::async_trait]
        impl ::jangteo_core::ports::CustomerRead for $t {
            async fn customer(
                &mut self,
                id: ::jangteo_core::ids::CustomerId,
            ) -> ::jangteo_core::CoreResult<Option<::jangteo_core::customer::Customer>> {
                $customer(self.conn(), id) $($aw)*
            }
            async fn customer_by_email(
                &mut self,
                email: &str,
            ) -> ::jangteo_core::CoreResult<Option<::jangteo_core::customer::Customer>> {
                customer_where(self.conn(), "email", email) $($aw)*
            }
            async fn customers_with_roles(
                &mut self,
                roles: &[::jangteo_core::customer::Role],
            ) -> ::jangteo_core::CoreResult<Vec<::jangteo_core::customer::Customer>> {
                customers_with_roles(self.conn(), roles) $($aw)*
            }
            async fn refresh_token(
                &mut self,
                token_hash: &str,
            ) -> ::jangteo_core::CoreResult<Option<::jangteo_core::customer::RefreshToken>> {
                refresh_token(self.conn(), token_hash) $($aw)*
            }
        }

        #[::async_trait::async_trait]
        impl ::jangteo_core::ports::IdempotencyRead for $t {
            async fn idempotency(
                &mut self,
                scope: &str,
                key: &str,
            ) -> ::jangteo_core::CoreResult<Option<::jangteo_core::ports::IdempotencyRecord>> {
                idempotency(self.conn(), scope, key) $($aw)*
            }
        }

        #[::async_trait::async_trait]
        impl ::jangteo_core::ports::AuditRead for $t {
            async fn audit_entries(
                &mut self,
                limit: u32,
                before: Option<i64>,
            ) -> ::jangteo_core::CoreResult<Vec<::jangteo_core::ports::AuditEntry>> {
                audit_entries(self.conn(), limit, before) $($aw)*
            }
        }
    };
    ($t:ty) => {
        $crate::commerce_read!(@ $t; cart; order; customer; .await);
    };
    // A transaction whose cart, order and account reads lock the row
    // (`cart_for_update`, `order_for_update`, `customer_for_update`), see `CartRead`,
    // `OrderRead` and `CustomerRead`.
    ($t:ty, locking) => {
        $crate::commerce_read!(@ $t; cart_for_update; order_for_update; customer_for_update; .await);
    };
    ($t:ty, sync) => {
        $crate::commerce_read!(@ $t; cart; order; customer;);
    };
}

/// Implements `ProjectionRead` by calling the backend's `sales`, `applied` and
/// `notifications`.
#[macro_export]
#[doc(hidden)]
macro_rules! projection_read {
    (@ $t:ty; $($aw:tt)*) => {
        #[::async_trait::async_trait]
        impl ::jangteo_core::ports::ProjectionRead for $t {
            async fn sales(
                &mut self,
                from: ::chrono::NaiveDate,
                to: ::chrono::NaiveDate,
            ) -> ::jangteo_core::CoreResult<Vec<::jangteo_core::ports::SalesRow>> {
                sales(self.conn(), from, to) $($aw)*
            }
            async fn applied(
                &mut self,
                consumer: &str,
                event: ::jangteo_core::ids::EventId,
            ) -> ::jangteo_core::CoreResult<bool> {
                applied(self.conn(), consumer, event) $($aw)*
            }
            async fn notifications(
                &mut self,
                limit: u32,
                before: Option<i64>,
            ) -> ::jangteo_core::CoreResult<Vec<::jangteo_core::ports::NotificationRecord>> {
                notifications(self.conn(), limit, before) $($aw)*
            }
        }
    };
    ($t:ty) => {
        $crate::projection_read!(@ $t; .await);
    };
    ($t:ty, sync) => {
        $crate::projection_read!(@ $t;);
    };
}

/// Implements `ComplianceRead` by calling the backend's `latest_documents`,
/// `document_history` and `buyer_orders`.
#[macro_export]
#[doc(hidden)]
macro_rules! compliance_read {
    (@ $t:ty; $($aw:tt)*) => {
        #[::async_trait::async_trait]
        impl ::jangteo_core::ports::ComplianceRead for $t {
            async fn latest_documents(
                &mut self,
                kind: &str,
            ) -> ::jangteo_core::CoreResult<Vec<::jangteo_core::ports::RuleDocument>> {
                latest_documents(self.conn(), kind) $($aw)*
            }
            async fn document_history(
                &mut self,
                kind: &str,
                key: &str,
                limit: u32,
            ) -> ::jangteo_core::CoreResult<Vec<::jangteo_core::ports::RuleDocument>> {
                document_history(self.conn(), kind, key, limit) $($aw)*
            }
            async fn buyer_orders(
                &mut self,
                buyer_key: &str,
                from: ::chrono::DateTime<::chrono::Utc>,
                to: ::chrono::DateTime<::chrono::Utc>,
            ) -> ::jangteo_core::CoreResult<Vec<::jangteo_core::compliance::PastOrder>> {
                buyer_orders(self.conn(), buyer_key, from, to) $($aw)*
            }
        }
    };
    ($t:ty) => {
        $crate::compliance_read!(@ $t; .await);
    };
    ($t:ty, sync) => {
        $crate::compliance_read!(@ $t;);
    };
}
