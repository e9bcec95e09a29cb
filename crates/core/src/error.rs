//! The one error type of the core crate.
//!
//! Variants say what went wrong in domain terms; adapters turn their own failures into
//! `Storage` / `Unavailable` with a message so that no sqlx, redis or rdkafka type leaks
//! into the domain (lldap's `DomainError` carrying an ORM error is the cautionary tale).

use serde::Serialize;

/// One field that failed validation, for 422 / 400 responses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    /// JSON-pointer-like path of the field, e.g. `variants[0].prices[1].amount`.
    pub field: String,
    /// Stable machine code, e.g. `required`, `too_long`, `invalid_format`.
    pub code: String,
    /// Human-readable explanation in English.
    pub message: String,
}

impl FieldError {
    /// Builds a field error.
    pub fn new(
        field: impl Into<String>,
        code: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            field: field.into(),
            code: code.into(),
            message: message.into(),
        }
    }
}

/// Everything a use case can fail with.
#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    /// The entity does not exist (or the caller may not know it exists).
    #[error("{entity} not found")]
    NotFound {
        /// Kind of entity: `product`, `cart`, `order`, ...
        entity: &'static str,
    },
    /// Input that is well-formed JSON but breaks a rule: bad values, missing fields.
    #[error("invalid input: {message}")]
    Invalid {
        /// Stable code, e.g. `validation_failed`, `currency_mismatch`.
        code: &'static str,
        /// Summary for humans.
        message: String,
        /// Per-field details, possibly empty.
        fields: Vec<FieldError>,
    },
    /// Not enough stock for a line at checkout or when adding to a cart.
    #[error("out of stock: variant {variant_id} requested {requested}, available {available}")]
    OutOfStock {
        /// The variant that ran short.
        variant_id: String,
        /// Quantity asked for.
        requested: i64,
        /// Quantity available when checked.
        available: i64,
    },
    /// The request conflicts with the current state: duplicate handle, wrong order state...
    #[error("conflict: {message}")]
    Conflict {
        /// Stable code, e.g. `handle_taken`, `invalid_state`, `cart_completed`.
        code: &'static str,
        /// Summary for humans.
        message: String,
    },
    /// The cart breaks the destination's rules; nothing was placed.
    #[error("compliance violation: {}", .0.iter().map(|v| v.code.as_str()).collect::<Vec<_>>().join(", "))]
    Compliance(Vec<crate::compliance::Violation>),
    /// No or bad credentials.
    #[error("unauthorized: {0}")]
    Unauthorized(String),
    /// Credentials are fine but the role or ownership is not.
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// Too many attempts (login rate limit).
    #[error("rate limited, retry after {retry_after_secs}s")]
    RateLimited {
        /// Seconds until a new attempt may succeed.
        retry_after_secs: u64,
    },
    /// The payment provider declined; the order was not placed.
    #[error("payment declined: {message}")]
    PaymentDeclined {
        /// Provider-independent code, e.g. `card_declined`.
        code: String,
        /// Summary for humans.
        message: String,
    },
    /// A backing service (database, broker, provider) could not be reached; retryable.
    #[error("service unavailable: {0}")]
    Unavailable(String),
    /// A storage failure that is not the caller's fault.
    #[error("storage error: {0}")]
    Storage(String),
    /// A bug or broken invariant.
    #[error("internal error: {0}")]
    Internal(String),
}

impl CoreError {
    /// Shorthand for a validation error with one field.
    pub fn invalid_field(field: &str, code: &str, message: impl Into<String>) -> Self {
        let message = message.into();
        CoreError::Invalid {
            code: "validation_failed",
            message: message.clone(),
            fields: vec![FieldError::new(field, code, message)],
        }
    }

    /// Shorthand for a validation error with a list of fields.
    pub fn validation(fields: Vec<FieldError>) -> Self {
        let message = fields
            .iter()
            .map(|f| format!("{}: {}", f.field, f.message))
            .collect::<Vec<_>>()
            .join("; ");
        CoreError::Invalid {
            code: "validation_failed",
            message,
            fields,
        }
    }

    /// Shorthand for an invalid-input error without field details.
    pub fn invalid(code: &'static str, message: impl Into<String>) -> Self {
        CoreError::Invalid {
            code,
            message: message.into(),
            fields: Vec::new(),
        }
    }

    /// Shorthand for a conflict.
    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        CoreError::Conflict {
            code,
            message: message.into(),
        }
    }
}

/// Result alias used throughout the core.
pub type CoreResult<T> = Result<T, CoreError>;
