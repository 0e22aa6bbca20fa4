-- Child runs: a run started by another run's workflow task keeps a link to
-- its parent, for the parent's notification when the child closes and for
-- the parent close policy when the parent closes first.

-- +goose Up
ALTER TABLE keel_runs ADD COLUMN parent_run_id text;
ALTER TABLE keel_runs ADD COLUMN parent_seq bigint NOT NULL DEFAULT 0;
ALTER TABLE keel_runs ADD COLUMN parent_close_policy int NOT NULL DEFAULT 0;
CREATE INDEX keel_runs_running_children ON keel_runs (parent_run_id)
    WHERE parent_run_id IS NOT NULL AND status = 'running';

-- +goose Down
DROP INDEX keel_runs_running_children;
ALTER TABLE keel_runs DROP COLUMN parent_close_policy;
ALTER TABLE keel_runs DROP COLUMN parent_seq;
ALTER TABLE keel_runs DROP COLUMN parent_run_id;
