-- Jangteo schema (PostgreSQL 15). Money is integer minor units; ids are UUIDs (v7,
-- time ordered); times are timestamptz; documents (carts, orders) are JSONB.
-- Searching needs pg_trgm and a UTF-8 database: trigrams of Korean text are only
-- extracted under a UTF-8 encoding and locale.

CREATE EXTENSION IF NOT EXISTS pg_trgm;

CREATE TABLE categories (
    handle TEXT PRIMARY KEY,
    name   JSONB NOT NULL
);

CREATE TABLE products (
    id          UUID PRIMARY KEY,
    handle      TEXT NOT NULL,
    status      TEXT NOT NULL CHECK (status IN ('draft', 'published')),
    title       JSONB NOT NULL,
    description JSONB NOT NULL,
    categories  JSONB NOT NULL,
    media       JSONB NOT NULL,
    countries   JSONB NOT NULL,
    search_text TEXT NOT NULL, -- lowercased titles, descriptions, handle and SKUs
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL,
    CONSTRAINT products_handle_key UNIQUE (handle)
);
CREATE INDEX products_newest ON products (status, created_at DESC, id DESC);
-- Substring search in any script: LIKE '%term%' uses this index for terms of three or
-- more characters; shorter terms (홍삼) scan the column, which is what SQLite does too.
-- No tsvector index: word-based full text does not segment Korean, and stemming would
-- make PostgreSQL find what SQLite does not (the contract suite demands the same).
CREATE INDEX products_search_trgm ON products USING gin (search_text gin_trgm_ops);

CREATE TABLE product_categories (
    category   TEXT NOT NULL,
    product_id UUID NOT NULL REFERENCES products (id) ON DELETE CASCADE,
    PRIMARY KEY (category, product_id)
);
CREATE INDEX product_categories_product ON product_categories (product_id);

CREATE TABLE variants (
    id         UUID PRIMARY KEY,
    product_id UUID NOT NULL REFERENCES products (id) ON DELETE CASCADE,
    position   INTEGER NOT NULL,
    sku        TEXT NOT NULL,
    options    JSONB NOT NULL,
    -- The last line of defence: whatever the code does, stock cannot go negative.
    stock      BIGINT NOT NULL CHECK (stock >= 0),
    CONSTRAINT variants_sku_key UNIQUE (sku)
);
CREATE INDEX variants_product ON variants (product_id, position);

CREATE TABLE prices (
    variant_id   UUID NOT NULL REFERENCES variants (id) ON DELETE CASCADE,
    product_id   UUID NOT NULL,
    currency     TEXT NOT NULL,
    amount_minor BIGINT NOT NULL,
    PRIMARY KEY (variant_id, currency)
);
CREATE INDEX prices_product ON prices (product_id, currency, amount_minor);

CREATE TABLE carts (
    id          UUID PRIMARY KEY,
    customer_id UUID,
    status      TEXT NOT NULL,
    expires_at  TIMESTAMPTZ NOT NULL,
    doc         JSONB NOT NULL
);
CREATE INDEX carts_expiry ON carts (status, expires_at);

CREATE TABLE orders (
    id                 UUID PRIMARY KEY,
    number             TEXT NOT NULL,
    cart_id            UUID NOT NULL,
    customer_id        UUID,
    status             TEXT NOT NULL,
    payment_expires_at TIMESTAMPTZ,
    created_at         TIMESTAMPTZ NOT NULL,
    doc                JSONB NOT NULL,
    CONSTRAINT orders_number_key UNIQUE (number)
);
CREATE INDEX orders_cart ON orders (cart_id);
CREATE INDEX orders_customer ON orders (customer_id, id DESC);
CREATE INDEX orders_status ON orders (status, id DESC);
CREATE INDEX orders_pending_expiry ON orders (payment_expires_at) WHERE status = 'pending';

CREATE TABLE customers (
    id            UUID PRIMARY KEY,
    email         TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    role          TEXT NOT NULL CHECK (role IN ('customer', 'operator', 'admin')),
    created_at    TIMESTAMPTZ NOT NULL,
    CONSTRAINT customers_email_key UNIQUE (email)
);

CREATE TABLE refresh_tokens (
    token_hash  TEXT PRIMARY KEY,
    family      TEXT NOT NULL,
    customer_id UUID NOT NULL REFERENCES customers (id) ON DELETE CASCADE,
    expires_at  TIMESTAMPTZ NOT NULL,
    used_at     TIMESTAMPTZ,
    revoked     BOOLEAN NOT NULL DEFAULT FALSE
);
CREATE INDEX refresh_tokens_family ON refresh_tokens (family);
CREATE INDEX refresh_tokens_expiry ON refresh_tokens (expires_at);

CREATE TABLE idempotency_keys (
    scope       TEXT NOT NULL,
    key         TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    resource_id TEXT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    CONSTRAINT idempotency_keys_pkey PRIMARY KEY (scope, key)
);
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);

CREATE TABLE audit_log (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at          TIMESTAMPTZ NOT NULL,
    actor_id    UUID,
    actor_email TEXT NOT NULL,
    action      TEXT NOT NULL,
    target_type TEXT NOT NULL,
    target_id   TEXT NOT NULL,
    details     JSONB NOT NULL
);

CREATE TABLE outbox (
    seq            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id       UUID NOT NULL UNIQUE,
    event_type     TEXT NOT NULL,
    aggregate_type TEXT NOT NULL,
    aggregate_id   TEXT NOT NULL,
    occurred_at    TIMESTAMPTZ NOT NULL,
    envelope       TEXT NOT NULL, -- the DomainEvent as JSON, byte for byte
    sent_at        TIMESTAMPTZ
);
CREATE INDEX outbox_unsent ON outbox (seq) WHERE sent_at IS NULL;
CREATE INDEX outbox_sent ON outbox (sent_at) WHERE sent_at IS NOT NULL;

-- One row: which relay may publish the outbox until when.
CREATE TABLE outbox_leases (
    name       TEXT PRIMARY KEY,
    holder     TEXT NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL
);

-- Events each consumer applied: written with the consumer's effect, so a redelivered
-- event is recognised and applied once.
CREATE TABLE processed_events (
    consumer   TEXT NOT NULL,
    event_id   UUID NOT NULL,
    applied_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (consumer, event_id)
);
CREATE INDEX processed_events_applied ON processed_events (applied_at);

CREATE TABLE sales_daily (
    day           DATE NOT NULL, -- UTC
    country       TEXT NOT NULL,
    product_id    UUID NOT NULL,
    currency      TEXT NOT NULL,
    orders        BIGINT NOT NULL,
    units         BIGINT NOT NULL,
    revenue_minor BIGINT NOT NULL,
    PRIMARY KEY (day, country, product_id, currency)
);

CREATE TABLE notifications (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id   UUID NOT NULL,
    channel    TEXT NOT NULL,
    recipient  TEXT NOT NULL,
    locale     TEXT NOT NULL,
    template   TEXT NOT NULL,
    subject    TEXT NOT NULL,
    body       TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    CONSTRAINT notifications_event_key UNIQUE (event_id, channel)
);
