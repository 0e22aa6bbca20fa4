-- Tickets, version 1. Times are int64 Unix nanoseconds (UTC). A ticket's
-- ID is "T-" followed by its number.

-- +goose Up
-- The last ticket number handed out (one row).
CREATE TABLE ticket_counter (
    id BIGINT  PRIMARY KEY CHECK (id = 1),
    n  BIGINT  NOT NULL
);
INSERT INTO ticket_counter (id, n) VALUES (1, 0);

CREATE TABLE ticket_tickets (
    number          BIGINT  PRIMARY KEY,
    subject         TEXT    NOT NULL,
    status          TEXT    NOT NULL,
    assignee        TEXT    NOT NULL DEFAULT '',
    requester_email TEXT    NOT NULL DEFAULT '', -- lowercased
    customer_key    TEXT    NOT NULL DEFAULT '',
    idempotency_key TEXT    UNIQUE, -- of the Create that made it; NULL when none
    created_at      BIGINT  NOT NULL,
    updated_at      BIGINT  NOT NULL
);
CREATE INDEX ticket_tickets_requester ON ticket_tickets (requester_email);
CREATE INDEX ticket_tickets_customer ON ticket_tickets (customer_key);

CREATE TABLE ticket_comments (
    id            BIGSERIAL PRIMARY KEY,
    ticket_number BIGINT  NOT NULL REFERENCES ticket_tickets (number) ON DELETE CASCADE,
    author        TEXT    NOT NULL DEFAULT '',
    body          TEXT    NOT NULL,
    public        BOOLEAN NOT NULL,
    created_at    BIGINT  NOT NULL
);
CREATE INDEX ticket_comments_ticket ON ticket_comments (ticket_number, id);

-- One row per applied update that carried an idempotency key: an update
-- whose key is here has been applied and is not applied again.
CREATE TABLE ticket_updates (
    idempotency_key TEXT    PRIMARY KEY,
    ticket_number   BIGINT  NOT NULL REFERENCES ticket_tickets (number) ON DELETE CASCADE,
    applied_at      BIGINT  NOT NULL
);

-- +goose Down
DROP TABLE ticket_updates;
DROP TABLE ticket_comments;
DROP TABLE ticket_tickets;
DROP TABLE ticket_counter;
