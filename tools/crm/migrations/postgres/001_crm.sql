-- CRM, version 1. Times are int64 Unix nanoseconds (UTC); amounts are in
-- the currency's minor unit (cents).

-- +goose Up
CREATE TABLE crm_customers (
    key        TEXT    PRIMARY KEY,
    name       TEXT    NOT NULL,
    email      TEXT    NOT NULL DEFAULT '', -- lowercased
    company    TEXT    NOT NULL DEFAULT '',
    plan       TEXT    NOT NULL DEFAULT '',
    metadata   TEXT    NOT NULL DEFAULT '{}', -- JSON object of strings
    created_at BIGINT  NOT NULL,
    updated_at BIGINT  NOT NULL
);
CREATE INDEX crm_customers_email ON crm_customers (email);

CREATE TABLE crm_contacts (
    customer_key TEXT    NOT NULL REFERENCES crm_customers (key) ON DELETE CASCADE,
    email        TEXT    NOT NULL, -- lowercased
    name         TEXT    NOT NULL DEFAULT '',
    role         TEXT    NOT NULL DEFAULT '',
    phone        TEXT    NOT NULL DEFAULT '',
    created_at   BIGINT  NOT NULL,
    updated_at   BIGINT  NOT NULL,
    PRIMARY KEY (customer_key, email)
);
CREATE INDEX crm_contacts_email ON crm_contacts (email);

CREATE TABLE crm_notes (
    id              BIGSERIAL PRIMARY KEY,
    customer_key    TEXT    NOT NULL REFERENCES crm_customers (key) ON DELETE CASCADE,
    author          TEXT    NOT NULL DEFAULT '',
    body            TEXT    NOT NULL,
    idempotency_key TEXT    UNIQUE, -- NULL when the caller gave none
    created_at      BIGINT  NOT NULL
);
CREATE INDEX crm_notes_customer ON crm_notes (customer_key, id);

CREATE TABLE crm_deals (
    key          TEXT    PRIMARY KEY,
    customer_key TEXT    NOT NULL REFERENCES crm_customers (key) ON DELETE CASCADE,
    title        TEXT    NOT NULL,
    stage        TEXT    NOT NULL,
    amount       BIGINT  NOT NULL,
    currency     TEXT    NOT NULL,
    created_at   BIGINT  NOT NULL,
    updated_at   BIGINT  NOT NULL
);
CREATE INDEX crm_deals_customer ON crm_deals (customer_key);

-- +goose Down
DROP TABLE crm_deals;
DROP TABLE crm_notes;
DROP TABLE crm_contacts;
DROP TABLE crm_customers;
