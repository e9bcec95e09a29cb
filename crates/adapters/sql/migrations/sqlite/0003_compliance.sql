-- Compliance data of products, buyers' cumulative imports, versioned rule documents.

-- `countries` keeps the per-country data (registration, halal, HS code, label
-- statements); product-level facts go here as {"ingredients": [...], "claims": {...}}.
ALTER TABLE products ADD COLUMN compliance TEXT NOT NULL DEFAULT '{}';

-- Keyed hash of the identifier a yearly import limit counts by; NULL when the
-- destination has no such limit.
ALTER TABLE orders ADD COLUMN buyer_key TEXT;
CREATE INDEX orders_buyer ON orders (buyer_key, created_at) WHERE buyer_key IS NOT NULL;

-- Documents operators maintain (a country's rules, exchange rates). Versions are only
-- ever added, so any past decision can be explained.
CREATE TABLE rule_documents (
    kind        TEXT NOT NULL,
    key         TEXT NOT NULL,
    version     INTEGER NOT NULL,
    doc         TEXT NOT NULL, -- JSON
    created_at  TEXT NOT NULL,
    actor_email TEXT,
    CONSTRAINT rule_documents_pkey PRIMARY KEY (kind, key, version)
) WITHOUT ROWID;
