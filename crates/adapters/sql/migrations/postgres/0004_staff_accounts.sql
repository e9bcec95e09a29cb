-- Accounts can be disabled (an employee leaves): a disabled account cannot sign in,
-- and its refresh tokens are revoked by customer, hence the index. A password change
-- or a disable bumps the session version; access tokens carry the version they were
-- issued under, and both APIs refuse one that is no longer current.
ALTER TABLE customers ADD COLUMN disabled_at TIMESTAMPTZ;
ALTER TABLE customers ADD COLUMN session_version BIGINT NOT NULL DEFAULT 0;
CREATE INDEX refresh_tokens_customer ON refresh_tokens (customer_id);
