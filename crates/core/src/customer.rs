//! Customers and staff users, and their refresh tokens.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{CoreError, CoreResult};
use crate::ids::CustomerId;

/// What a user may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// A buyer.
    Customer,
    /// Manages products and orders through the admin API.
    Operator,
    /// Everything an operator can, plus managing staff users.
    Admin,
}

impl Role {
    /// Storage / claim form.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Customer => "customer",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }

    /// Parses the storage form.
    pub fn parse(s: &str) -> CoreResult<Self> {
        match s {
            "customer" => Ok(Role::Customer),
            "operator" => Ok(Role::Operator),
            "admin" => Ok(Role::Admin),
            _ => Err(CoreError::invalid_field(
                "role",
                "invalid_value",
                "one of customer, operator, admin",
            )),
        }
    }

    /// Staff roles reach the admin API.
    pub fn is_staff(self) -> bool {
        matches!(self, Role::Operator | Role::Admin)
    }
}

/// A user account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Customer {
    /// Id.
    pub id: CustomerId,
    /// Login e-mail, stored lowercased.
    pub email: String,
    /// Argon2id PHC string; never serialized to clients.
    #[serde(skip_serializing)]
    pub password_hash: String,
    /// Role.
    pub role: Role,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Set when an admin disabled the account: it cannot sign in, and its tokens stop
    /// working.
    #[serde(default)]
    pub disabled_at: Option<DateTime<Utc>>,
    /// Bumped by a password change or reset and by disabling the account. Access tokens
    /// carry the version they were issued under and are refused once it moved on: a
    /// counter, not a time, so no clock (of this host or another) decides which tokens
    /// predate the change.
    #[serde(default)]
    pub session_version: i64,
}

/// A stored refresh token. Only its SHA-256 is kept; the family ties rotations together
/// so that replaying a used token revokes the whole chain (theft detection).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshToken {
    /// SHA-256 of the token, hex.
    pub token_hash: String,
    /// Rotation chain id.
    pub family: String,
    /// Owner.
    pub customer_id: CustomerId,
    /// Expiry.
    pub expires_at: DateTime<Utc>,
    /// Set once rotated.
    pub used_at: Option<DateTime<Utc>>,
    /// Set when the family is revoked.
    pub revoked: bool,
}
