-- +goose Up
-- One row per email, keyed by its idempotency key, written before the send
-- and updated after. Addresses are JSON arrays; times are Unix microseconds.
CREATE TABLE email_outbox (
    idem_key      TEXT PRIMARY KEY,
    status        TEXT NOT NULL,
    params_hash   TEXT NOT NULL,
    from_addr     TEXT NOT NULL,
    to_addrs      TEXT NOT NULL,
    cc_addrs      TEXT NOT NULL DEFAULT '[]',
    bcc_addrs     TEXT NOT NULL DEFAULT '[]',
    reply_to      TEXT NOT NULL DEFAULT '',
    subject       TEXT NOT NULL,
    text_body     TEXT NOT NULL DEFAULT '',
    html_body     TEXT NOT NULL DEFAULT '',
    sandbox       INTEGER NOT NULL DEFAULT 0,
    message_id    TEXT NOT NULL DEFAULT '',
    attempts      INTEGER NOT NULL DEFAULT 0,
    error_code    TEXT NOT NULL DEFAULT '',
    error_message TEXT NOT NULL DEFAULT '',
    resolution    TEXT NOT NULL DEFAULT '',
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
);
CREATE INDEX email_outbox_status ON email_outbox (status, created_at);
CREATE INDEX email_outbox_created ON email_outbox (created_at);

-- +goose Down
DROP TABLE email_outbox;
