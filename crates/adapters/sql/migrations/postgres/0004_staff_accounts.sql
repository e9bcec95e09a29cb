-- Staff accounts can be disabled (an employee leaves): a disabled account cannot sign
-- in, and its refresh tokens are revoked by customer, hence the index.
ALTER TABLE customers ADD COLUMN disabled_at TIMESTAMPTZ;
CREATE INDEX refresh_tokens_customer ON refresh_tokens (customer_id);
