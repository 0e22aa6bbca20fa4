-- Keel durable store schema, version 1 (PostgreSQL).
--
-- Every object is created unqualified, so it lands in the first schema of
-- the connection's search_path. Names carry a keel_ prefix so that they do
-- not clash with an application's tables in the same schema.
--
-- Times are bigint Unix nanoseconds (UTC); durations are bigint nanoseconds
-- where 0 means "no limit"; a NULL deadline means "none". There are no
-- foreign keys: every row of a run is written and deleted by the store's
-- own statements, and the hot paths skip the extra checks.

-- +goose Up

-- keel_raise aborts the current statement, and with it the rest of the
-- transaction, with the given SQLSTATE. The store's statements call it when
-- a fence fails, so that a multi-statement round trip stops there.
-- +goose StatementBegin
CREATE FUNCTION keel_raise(code text, message text) RETURNS boolean
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION USING ERRCODE = code, MESSAGE = message;
END
$$;
-- +goose StatementEnd

-- keel_runs: one row per run. seq is the creation order that ListRuns
-- pages by and GetLatestRun picks the newest run with.
CREATE TABLE keel_runs (
    seq               bigserial NOT NULL,
    run_id            text      PRIMARY KEY,
    workflow_id       text      NOT NULL,
    workflow_type     text      NOT NULL,
    task_queue        text      NOT NULL,
    status            text      NOT NULL,
    input             bytea,
    result            bytea,
    failure           bytea,
    history_len       bigint    NOT NULL,
    history_bytes     bigint    NOT NULL,
    cancel_requested  boolean   NOT NULL DEFAULT false,
    last_task_failure text      NOT NULL DEFAULT '',
    created_at        bigint    NOT NULL,
    updated_at        bigint    NOT NULL,
    closed_at         bigint
);
CREATE UNIQUE INDEX keel_runs_seq ON keel_runs (seq);
-- At most one running run per workflow ID, across every process.
CREATE UNIQUE INDEX keel_runs_running_workflow_id ON keel_runs (workflow_id) WHERE status = 'running';
CREATE INDEX keel_runs_workflow_id ON keel_runs (workflow_id, seq);
CREATE INDEX keel_runs_workflow_type ON keel_runs (workflow_type, seq);
CREATE INDEX keel_runs_status ON keel_runs (status, seq);
-- DeleteClosedRuns.
CREATE INDEX keel_runs_closed_at ON keel_runs (closed_at) WHERE closed_at IS NOT NULL;

-- keel_events: each run's append-only history; id is the 1-based position.
CREATE TABLE keel_events (
    run_id text   NOT NULL,
    id     bigint NOT NULL,
    type   text   NOT NULL,
    time   bigint NOT NULL,
    data   bytea,
    PRIMARY KEY (run_id, id)
);

-- keel_inbox: what happened to a run and waits for its next workflow task.
-- Every writer takes the run's keel_workflow_tasks row lock before it
-- inserts here, so a run's inbox ids are taken in commit order.
CREATE TABLE keel_inbox (
    id     bigserial PRIMARY KEY,
    run_id text      NOT NULL,
    type   text      NOT NULL,
    time   bigint    NOT NULL,
    data   bytea
);
CREATE INDEX keel_inbox_run_id ON keel_inbox (run_id, id);

-- keel_signal_requests: signal request IDs already accepted per run. Kept
-- after the inbox row is consumed and after the run closes.
CREATE TABLE keel_signal_requests (
    run_id     text   NOT NULL,
    request_id text   NOT NULL,
    created_at bigint NOT NULL,
    PRIMARY KEY (run_id, request_id)
);

-- keel_workflow_tasks: at most one per running run. ready_at is the moment
-- the task can be claimed: its ready time while unleased, its lease expiry
-- while leased, so one index serves claims of new and of expired tasks.
-- wake_at, when set, is a moment NextWakeup reports (a lease expiry or a
-- retry backoff); FireTimers clears it once it is due.
CREATE TABLE keel_workflow_tasks (
    run_id           text    PRIMARY KEY,
    task_queue       text    NOT NULL,
    ready_at         bigint  NOT NULL,
    wake_at          bigint,
    token            text,
    owner            text,
    lease_expires_at bigint,
    attempt          integer NOT NULL DEFAULT 0
);
CREATE INDEX keel_workflow_tasks_claim ON keel_workflow_tasks (task_queue, ready_at);
-- A claim reads back the tasks it leased by their new tokens.
CREATE UNIQUE INDEX keel_workflow_tasks_token ON keel_workflow_tasks (token) WHERE token IS NOT NULL;
CREATE INDEX keel_workflow_tasks_wake ON keel_workflow_tasks (wake_at) WHERE wake_at IS NOT NULL;

-- keel_activity_tasks: scheduled activities until their final outcome.
-- token is set while leased. schedule_to_start is the timeout the
-- schedule-to-start deadline was computed from, so that a retry gets a
-- fresh deadline. wake_at is a delayed ready_at (a retry backoff) that
-- NextWakeup reports until FireTimers clears it. deadline_at is the moment
-- the task times out: for an unleased task its schedule-to-start or
-- schedule-to-close deadline, for a leased one its lease expiry or
-- schedule-to-close deadline, whichever comes first.
CREATE TABLE keel_activity_tasks (
    run_id                     text    NOT NULL,
    seq                        bigint  NOT NULL,
    workflow_id                text    NOT NULL,
    activity_type              text    NOT NULL,
    task_queue                 text    NOT NULL,
    input                      bytea,
    options                    bytea,
    attempt                    integer NOT NULL,
    scheduled_at               bigint  NOT NULL,
    ready_at                   bigint  NOT NULL,
    wake_at                    bigint,
    schedule_to_start          bigint  NOT NULL,
    schedule_to_start_deadline bigint,
    schedule_to_close_deadline bigint,
    start_to_close             bigint  NOT NULL,
    heartbeat_timeout          bigint  NOT NULL,
    heartbeat_details          bytea,
    token                      text,
    owner                      text,
    started_at                 bigint,
    lease_expires_at           bigint,
    cancel_requested           boolean NOT NULL DEFAULT false,
    deadline_at                bigint GENERATED ALWAYS AS (
        CASE WHEN token IS NULL
            THEN least(schedule_to_start_deadline, schedule_to_close_deadline)
            ELSE least(lease_expires_at, schedule_to_close_deadline)
        END) STORED,
    PRIMARY KEY (run_id, seq)
);
CREATE INDEX keel_activity_tasks_claim ON keel_activity_tasks (task_queue, ready_at) WHERE token IS NULL;
CREATE INDEX keel_activity_tasks_deadline ON keel_activity_tasks (deadline_at) WHERE deadline_at IS NOT NULL;
CREATE INDEX keel_activity_tasks_wake ON keel_activity_tasks (wake_at) WHERE wake_at IS NOT NULL;

-- keel_timers: durable timers until they fire or are canceled.
CREATE TABLE keel_timers (
    run_id    text   NOT NULL,
    seq       bigint NOT NULL,
    fire_at   bigint NOT NULL,
    item_type text   NOT NULL,
    item_data bytea,
    PRIMARY KEY (run_id, seq)
);
CREATE INDEX keel_timers_fire_at ON keel_timers (fire_at);

-- keel_activity_attempts: the audit trail of activity attempts, kept
-- outside the replay history.
CREATE TABLE keel_activity_attempts (
    run_id        text    NOT NULL,
    seq           bigint  NOT NULL,
    attempt       integer NOT NULL,
    activity_type text    NOT NULL,
    owner         text    NOT NULL,
    started_at    bigint,
    ended_at      bigint,
    outcome       text    NOT NULL,
    error         text    NOT NULL,
    PRIMARY KEY (run_id, seq, attempt)
);

-- +goose Down
DROP TABLE keel_activity_attempts;
DROP TABLE keel_timers;
DROP TABLE keel_activity_tasks;
DROP TABLE keel_workflow_tasks;
DROP TABLE keel_signal_requests;
DROP TABLE keel_inbox;
DROP TABLE keel_events;
DROP TABLE keel_runs;
DROP FUNCTION keel_raise(text, text);
