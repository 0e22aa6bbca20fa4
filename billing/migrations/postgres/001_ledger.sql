-- +goose Up
-- One row per charge, refund or usage record, keyed by its idempotency key
-- (also Stripe's Idempotency-Key). Times are Unix microseconds.
CREATE TABLE billing_ledger (
    ledger_key     TEXT PRIMARY KEY,
    kind           TEXT NOT NULL,
    status         TEXT NOT NULL,
    params_hash    TEXT NOT NULL,
    customer       TEXT NOT NULL DEFAULT '',
    amount         BIGINT NOT NULL DEFAULT 0,
    currency       TEXT NOT NULL DEFAULT '',
    description    TEXT NOT NULL DEFAULT '',
    payment_method TEXT NOT NULL DEFAULT '',
    target         TEXT NOT NULL DEFAULT '',
    stripe_id      TEXT NOT NULL DEFAULT '',
    stripe_status  TEXT NOT NULL DEFAULT '',
    error_code     TEXT NOT NULL DEFAULT '',
    error_message  TEXT NOT NULL DEFAULT '',
    attempts       INTEGER NOT NULL DEFAULT 0,
    reconciled     INTEGER NOT NULL DEFAULT 0,
    created_at     BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL
);
CREATE INDEX billing_ledger_customer ON billing_ledger (customer, created_at);
CREATE INDEX billing_ledger_status ON billing_ledger (status, created_at);

-- +goose Down
DROP TABLE billing_ledger;
