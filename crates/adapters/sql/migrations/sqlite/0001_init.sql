-- Jangteo embedded schema (SQLite). Money is stored as integer minor units; times as
-- RFC 3339 UTC text with fixed microsecond precision, so text order is time order.

CREATE TABLE categories (
    handle TEXT PRIMARY KEY,
    name   TEXT NOT NULL -- JSON {locale: text}
);

CREATE TABLE products (
    rid         INTEGER PRIMARY KEY, -- rowid alias, joins the FTS index
    id          TEXT NOT NULL UNIQUE,
    handle      TEXT NOT NULL,
    status      TEXT NOT NULL CHECK (status IN ('draft', 'published')),
    title       TEXT NOT NULL,
    description TEXT NOT NULL,
    categories  TEXT NOT NULL,
    media       TEXT NOT NULL,
    countries   TEXT NOT NULL,
    search_text TEXT NOT NULL, -- lowercased titles, descriptions, handle and SKUs
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    CONSTRAINT products_handle_key UNIQUE (handle)
);
CREATE INDEX products_newest ON products (status, created_at DESC, id DESC);

-- Trigram index: substrings of three or more characters in any script.
CREATE VIRTUAL TABLE products_fts USING fts5 (body, tokenize = 'trigram');

CREATE TABLE product_categories (
    category   TEXT NOT NULL,
    product_id TEXT NOT NULL REFERENCES products (id) ON DELETE CASCADE,
    PRIMARY KEY (category, product_id)
) WITHOUT ROWID;

CREATE TABLE variants (
    id         TEXT PRIMARY KEY,
    product_id TEXT NOT NULL REFERENCES products (id) ON DELETE CASCADE,
    position   INTEGER NOT NULL,
    sku        TEXT NOT NULL,
    options    TEXT NOT NULL,
    -- The last line of defence: whatever the code does, stock cannot go negative.
    stock      INTEGER NOT NULL CHECK (stock >= 0),
    CONSTRAINT variants_sku_key UNIQUE (sku)
);
CREATE INDEX variants_product ON variants (product_id, position);

CREATE TABLE prices (
    variant_id   TEXT NOT NULL REFERENCES variants (id) ON DELETE CASCADE,
    product_id   TEXT NOT NULL,
    currency     TEXT NOT NULL,
    amount_minor INTEGER NOT NULL,
    PRIMARY KEY (variant_id, currency)
) WITHOUT ROWID;
CREATE INDEX prices_product ON prices (product_id, currency, amount_minor);

CREATE TABLE carts (
    id          TEXT PRIMARY KEY,
    customer_id TEXT,
    status      TEXT NOT NULL,
    expires_at  TEXT NOT NULL,
    doc         TEXT NOT NULL -- the whole cart as JSON
);
CREATE INDEX carts_expiry ON carts (status, expires_at);

CREATE TABLE orders (
    id                 TEXT PRIMARY KEY, -- UUID v7: time ordered
    number             TEXT NOT NULL,
    cart_id            TEXT NOT NULL,
    customer_id        TEXT,
    status             TEXT NOT NULL,
    payment_expires_at TEXT,
    created_at         TEXT NOT NULL,
    doc                TEXT NOT NULL, -- the whole order as JSON
    CONSTRAINT orders_number_key UNIQUE (number),
    CONSTRAINT orders_cart_key UNIQUE (cart_id, id)
);
CREATE INDEX orders_customer ON orders (customer_id, id DESC);
CREATE INDEX orders_status ON orders (status, id DESC);
CREATE INDEX orders_pending_expiry ON orders (payment_expires_at) WHERE status = 'pending';

CREATE TABLE customers (
    id            TEXT PRIMARY KEY,
    email         TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    role          TEXT NOT NULL CHECK (role IN ('customer', 'operator', 'admin')),
    created_at    TEXT NOT NULL,
    CONSTRAINT customers_email_key UNIQUE (email)
);

CREATE TABLE refresh_tokens (
    token_hash  TEXT PRIMARY KEY,
    family      TEXT NOT NULL,
    customer_id TEXT NOT NULL REFERENCES customers (id) ON DELETE CASCADE,
    expires_at  TEXT NOT NULL,
    used_at     TEXT,
    revoked     INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX refresh_tokens_family ON refresh_tokens (family);

CREATE TABLE idempotency_keys (
    scope       TEXT NOT NULL,
    key         TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    resource_id TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    PRIMARY KEY (scope, key)
) WITHOUT ROWID;

CREATE TABLE audit_log (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    at          TEXT NOT NULL,
    actor_id    TEXT,
    actor_email TEXT NOT NULL,
    action      TEXT NOT NULL,
    target_type TEXT NOT NULL,
    target_id   TEXT NOT NULL,
    details     TEXT NOT NULL
);

CREATE TABLE outbox (
    seq            INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id       TEXT NOT NULL UNIQUE,
    event_type     TEXT NOT NULL,
    aggregate_type TEXT NOT NULL,
    aggregate_id   TEXT NOT NULL,
    occurred_at    TEXT NOT NULL,
    envelope       TEXT NOT NULL, -- the DomainEvent as JSON
    sent_at        TEXT
);
CREATE INDEX outbox_unsent ON outbox (seq) WHERE sent_at IS NULL;
