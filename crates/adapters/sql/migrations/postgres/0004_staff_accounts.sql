-- Accounts can be disabled (an employee leaves): a disabled account cannot sign in,
-- and its refresh tokens are revoked by customer, hence the index. A password change
-- records when, so the admin API refuses access tokens issued before it.
ALTER TABLE customers ADD COLUMN disabled_at TIMESTAMPTZ;
ALTER TABLE customers ADD COLUMN sessions_valid_after TIMESTAMPTZ;
CREATE INDEX refresh_tokens_customer ON refresh_tokens (customer_id);
