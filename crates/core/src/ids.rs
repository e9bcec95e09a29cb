//! Typed identifiers. UUID v7 so that ids sort by creation time, which keeps B-tree
//! inserts local and gives cursor pagination a natural tiebreaker.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            /// A fresh, time-ordered id.
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map(Self)
            }
        }
    };
}

id_type!(
    /// A product.
    ProductId
);
id_type!(
    /// A product variant (the thing with a SKU, a price and stock).
    VariantId
);
id_type!(
    /// A cart.
    CartId
);
id_type!(
    /// A cart line.
    LineId
);
id_type!(
    /// An order.
    OrderId
);
id_type!(
    /// A customer or staff user.
    CustomerId
);
id_type!(
    /// A domain event.
    EventId
);
