-- Outbox relay lease and the state of event consumers.

-- One row: which relay may publish the outbox until when.
CREATE TABLE outbox_leases (
    name       TEXT PRIMARY KEY,
    holder     TEXT NOT NULL,
    expires_at TEXT NOT NULL
);

-- Events each consumer applied: written with the consumer's effect, so a redelivered
-- event is recognised and applied once.
CREATE TABLE processed_events (
    consumer   TEXT NOT NULL,
    event_id   TEXT NOT NULL,
    applied_at TEXT NOT NULL,
    PRIMARY KEY (consumer, event_id)
) WITHOUT ROWID;
CREATE INDEX processed_events_applied ON processed_events (applied_at);

CREATE TABLE sales_daily (
    day           TEXT NOT NULL, -- YYYY-MM-DD (UTC)
    country       TEXT NOT NULL,
    product_id    TEXT NOT NULL,
    currency      TEXT NOT NULL,
    orders        INTEGER NOT NULL,
    units         INTEGER NOT NULL,
    revenue_minor INTEGER NOT NULL,
    PRIMARY KEY (day, country, product_id, currency)
) WITHOUT ROWID;

CREATE TABLE notifications (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id   TEXT NOT NULL,
    channel    TEXT NOT NULL,
    recipient  TEXT NOT NULL,
    locale     TEXT NOT NULL,
    template   TEXT NOT NULL,
    subject    TEXT NOT NULL,
    body       TEXT NOT NULL,
    created_at TEXT NOT NULL,
    CONSTRAINT notifications_event_key UNIQUE (event_id, channel)
);
