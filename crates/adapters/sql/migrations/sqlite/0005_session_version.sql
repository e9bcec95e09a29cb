-- Sessions end by a counter, not a time: a password change, reset or disable bumps
-- session_version, and access tokens carry the version they were issued under.
-- sessions_valid_after (0004) compared issue times in milliseconds, which let a token
-- of the same millisecond through, and clocks of different hosts disagree.
ALTER TABLE customers ADD COLUMN session_version INTEGER NOT NULL DEFAULT 0;
-- Tokens signed before this migration carry no version (read as 0): an account whose
-- sessions were already ended once starts at 1, so tokens from before that end stay
-- refused (its holder signs in again once).
UPDATE customers SET session_version = 1 WHERE sessions_valid_after IS NOT NULL;
-- sessions_valid_after stays (unused) for now: a build before this one, still running
-- during a rolling upgrade, reads and writes it. A later migration drops it.
