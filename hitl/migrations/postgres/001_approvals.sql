-- +goose Up
CREATE TABLE hitl_approvals (
    id              TEXT PRIMARY KEY,
    -- The record activity's idempotency key (run ID + sequence): a
    -- retried attempt finds the row its earlier attempt wrote.
    idempotency_key TEXT NOT NULL UNIQUE,
    workflow_id     TEXT NOT NULL,
    run_id          TEXT NOT NULL,
    title           TEXT NOT NULL,
    details         TEXT NOT NULL DEFAULT '',
    action          TEXT NOT NULL,
    args            TEXT NOT NULL,  -- canonical JSON
    args_hash       TEXT NOT NULL,
    reviewer_group  TEXT NOT NULL,
    required        INTEGER NOT NULL,
    requester       TEXT NOT NULL DEFAULT '',
    status          TEXT NOT NULL,
    version         BIGINT NOT NULL DEFAULT 0,
    created_at      BIGINT NOT NULL, -- Unix microseconds, as every time here
    deadline        BIGINT NOT NULL,
    closed_at       BIGINT
);
CREATE INDEX hitl_approvals_list ON hitl_approvals (created_at DESC, id DESC);
CREATE INDEX hitl_approvals_status ON hitl_approvals (status, created_at DESC, id DESC);
CREATE INDEX hitl_approvals_group ON hitl_approvals (reviewer_group, status, created_at DESC, id DESC);
CREATE INDEX hitl_approvals_run ON hitl_approvals (run_id);
CREATE INDEX hitl_approvals_workflow ON hitl_approvals (workflow_id);

CREATE TABLE hitl_votes (
    id                TEXT PRIMARY KEY,
    approval_id       TEXT NOT NULL REFERENCES hitl_approvals (id),
    vote_no           INTEGER NOT NULL,
    reviewer          TEXT NOT NULL,
    approve           BOOLEAN NOT NULL,
    comment           TEXT NOT NULL DEFAULT '',
    args_hash         TEXT NOT NULL,
    edited_args       TEXT,
    edited_args_hash  TEXT,
    link_nonce        TEXT UNIQUE,
    status_after      TEXT NOT NULL,
    created_at        BIGINT NOT NULL,
    -- Outbox: NULL until the workflow was signalled.
    delivered_at      BIGINT,
    delivery_attempts INTEGER NOT NULL DEFAULT 0,
    delivery_error    TEXT NOT NULL DEFAULT '',
    UNIQUE (approval_id, reviewer),
    UNIQUE (approval_id, vote_no)
);
CREATE INDEX hitl_votes_undelivered ON hitl_votes (created_at) WHERE delivered_at IS NULL;

-- +goose Down
DROP TABLE hitl_votes;
DROP TABLE hitl_approvals;
