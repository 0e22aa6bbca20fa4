-- Keel durable store schema, version 1.
--
-- Times are int64 Unix nanoseconds (UTC); durations are int64 nanoseconds
-- where 0 means "no limit"; a NULL deadline means "none".

-- +goose Up

-- runs: one row per run. seq (the rowid) is the creation order that
-- ListRuns pages by and GetLatestRun picks the newest run with. Only
-- retention deletes runs, oldest closed first, so a new run's seq is always
-- above every remaining run's.
CREATE TABLE runs (
    seq               INTEGER PRIMARY KEY,
    run_id            TEXT    NOT NULL UNIQUE,
    workflow_id       TEXT    NOT NULL,
    workflow_type     TEXT    NOT NULL,
    task_queue        TEXT    NOT NULL,
    status            TEXT    NOT NULL,
    input             BLOB,
    result            BLOB,
    failure           BLOB,
    history_len       INTEGER NOT NULL,
    history_bytes     INTEGER NOT NULL,
    cancel_requested  INTEGER NOT NULL DEFAULT 0,
    last_task_failure TEXT    NOT NULL DEFAULT '',
    created_at        INTEGER NOT NULL,
    updated_at        INTEGER NOT NULL,
    closed_at         INTEGER
) STRICT;

-- At most one running run per workflow ID.
CREATE UNIQUE INDEX runs_running_workflow_id ON runs (workflow_id) WHERE status = 'running';
CREATE INDEX runs_workflow_id ON runs (workflow_id, seq);
CREATE INDEX runs_workflow_type ON runs (workflow_type, seq);
CREATE INDEX runs_status ON runs (status, seq);

-- events: each run's append-only history; id is the 1-based position.
CREATE TABLE events (
    run_id TEXT    NOT NULL,
    id     INTEGER NOT NULL,
    type   TEXT    NOT NULL,
    time   INTEGER NOT NULL,
    data   BLOB,
    PRIMARY KEY (run_id, id)
) STRICT;

-- inbox: what happened to a run and waits for its next workflow task. The
-- AUTOINCREMENT id never reuses a value, so ids grow across the whole store.
CREATE TABLE inbox (
    id     INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id TEXT    NOT NULL,
    type   TEXT    NOT NULL,
    time   INTEGER NOT NULL,
    data   BLOB
) STRICT;
CREATE INDEX inbox_run ON inbox (run_id, id);

-- signal_requests: signal request IDs already accepted per run. Kept after
-- the inbox row is consumed and after the run closes.
CREATE TABLE signal_requests (
    run_id     TEXT NOT NULL,
    request_id TEXT NOT NULL,
    PRIMARY KEY (run_id, request_id)
) STRICT, WITHOUT ROWID;

-- workflow_tasks: at most one per running run. available_at is the moment
-- the task can be claimed: its ready time while unleased, its lease expiry
-- while leased. wake_at, when set, is a future moment NextWakeup reports (a
-- lease expiry or a retry backoff); FireTimers clears it once it is due.
CREATE TABLE workflow_tasks (
    run_id       TEXT    PRIMARY KEY,
    task_queue   TEXT    NOT NULL,
    available_at INTEGER NOT NULL,
    wake_at      INTEGER,
    token        TEXT,
    owner        TEXT,
    attempt      INTEGER NOT NULL DEFAULT 0
) STRICT, WITHOUT ROWID;
CREATE INDEX workflow_tasks_claim ON workflow_tasks (task_queue, available_at);
CREATE INDEX workflow_tasks_wake ON workflow_tasks (wake_at) WHERE wake_at IS NOT NULL;

-- activity_tasks: scheduled activities until their final outcome. token is
-- set while leased. schedule_to_start is the timeout the schedule-to-start
-- deadline was computed from, so that a retry gets a fresh deadline. wake_at
-- is a delayed ready_at (a retry backoff) that NextWakeup reports until
-- FireTimers clears it. deadline_at is the moment the task times out.
CREATE TABLE activity_tasks (
    run_id                     TEXT    NOT NULL,
    seq                        INTEGER NOT NULL,
    workflow_id                TEXT    NOT NULL,
    activity_type              TEXT    NOT NULL,
    task_queue                 TEXT    NOT NULL,
    input                      BLOB,
    options                    BLOB,
    attempt                    INTEGER NOT NULL,
    scheduled_at               INTEGER NOT NULL,
    ready_at                   INTEGER NOT NULL,
    wake_at                    INTEGER,
    schedule_to_start          INTEGER NOT NULL,
    schedule_to_start_deadline INTEGER,
    schedule_to_close_deadline INTEGER,
    start_to_close             INTEGER NOT NULL,
    heartbeat_timeout          INTEGER NOT NULL,
    heartbeat_details          BLOB,
    token                      TEXT,
    owner                      TEXT,
    started_at                 INTEGER,
    lease_expires_at           INTEGER,
    cancel_requested           INTEGER NOT NULL DEFAULT 0,
    deadline_at                INTEGER GENERATED ALWAYS AS (
        CASE WHEN token IS NULL
            THEN coalesce(min(schedule_to_start_deadline, schedule_to_close_deadline),
                          schedule_to_start_deadline, schedule_to_close_deadline)
            ELSE coalesce(min(lease_expires_at, schedule_to_close_deadline),
                          lease_expires_at, schedule_to_close_deadline)
        END) VIRTUAL,
    PRIMARY KEY (run_id, seq)
) STRICT;
CREATE INDEX activity_tasks_claim ON activity_tasks (task_queue, ready_at) WHERE token IS NULL;
CREATE INDEX activity_tasks_deadline ON activity_tasks (deadline_at) WHERE deadline_at IS NOT NULL;
CREATE INDEX activity_tasks_wake ON activity_tasks (wake_at) WHERE wake_at IS NOT NULL;

-- timers: durable timers until they fire or are canceled. task_queue is the
-- run's, which FireTimers reports.
CREATE TABLE timers (
    run_id     TEXT    NOT NULL,
    seq        INTEGER NOT NULL,
    fire_at    INTEGER NOT NULL,
    task_queue TEXT    NOT NULL,
    item_type  TEXT    NOT NULL,
    item_data  BLOB,
    PRIMARY KEY (run_id, seq)
) STRICT;
CREATE INDEX timers_fire_at ON timers (fire_at);

-- activity_attempts: the audit trail of activity attempts, kept outside the
-- replay history. Its rows are small, so it is clustered on its key; events
-- and activity_tasks, whose payloads can be large, are rowid tables.
CREATE TABLE activity_attempts (
    run_id        TEXT    NOT NULL,
    seq           INTEGER NOT NULL,
    attempt       INTEGER NOT NULL,
    activity_type TEXT    NOT NULL,
    owner         TEXT    NOT NULL,
    started_at    INTEGER,
    ended_at      INTEGER,
    outcome       TEXT    NOT NULL,
    error         TEXT    NOT NULL,
    PRIMARY KEY (run_id, seq, attempt)
) STRICT, WITHOUT ROWID;

-- Writing to a running run's inbox makes its workflow task runnable: the
-- task is created, ready at the item's time, unless the run already has one
-- (leased, or waiting out a retry backoff), which is left as it is.
-- +goose StatementBegin
CREATE TRIGGER inbox_wakes_run AFTER INSERT ON inbox
BEGIN
    INSERT INTO workflow_tasks (run_id, task_queue, available_at, attempt)
    SELECT run_id, task_queue, NEW.time, 0 FROM runs
    WHERE run_id = NEW.run_id AND status = 'running'
    ON CONFLICT (run_id) DO NOTHING;
END;
-- +goose StatementEnd

-- Closing a run deletes its workflow task, activity tasks, timers and inbox.
-- +goose StatementBegin
CREATE TRIGGER runs_closed AFTER UPDATE OF status ON runs
WHEN OLD.status = 'running' AND NEW.status <> 'running'
BEGIN
    DELETE FROM workflow_tasks WHERE run_id = NEW.run_id;
    DELETE FROM activity_tasks WHERE run_id = NEW.run_id;
    DELETE FROM timers WHERE run_id = NEW.run_id;
    DELETE FROM inbox WHERE run_id = NEW.run_id;
END;
-- +goose StatementEnd

-- +goose Down
DROP TABLE activity_attempts;
DROP TABLE timers;
DROP TABLE activity_tasks;
DROP TABLE workflow_tasks;
DROP TABLE signal_requests;
DROP TABLE inbox;
DROP TABLE events;
DROP TABLE runs;
