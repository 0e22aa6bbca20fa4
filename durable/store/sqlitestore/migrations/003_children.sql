-- Child runs: a run started by another run's workflow task keeps a link to
-- its parent, for the parent's notification when the child closes and for
-- the parent close policy when the parent closes first.

-- +goose Up
ALTER TABLE runs ADD COLUMN parent_run_id TEXT;
ALTER TABLE runs ADD COLUMN parent_seq INTEGER NOT NULL DEFAULT 0;
ALTER TABLE runs ADD COLUMN parent_close_policy INTEGER NOT NULL DEFAULT 0;
CREATE INDEX runs_running_children ON runs (parent_run_id) WHERE parent_run_id IS NOT NULL AND status = 'running';

-- +goose Down
DROP INDEX runs_running_children;
ALTER TABLE runs DROP COLUMN parent_close_policy;
ALTER TABLE runs DROP COLUMN parent_seq;
ALTER TABLE runs DROP COLUMN parent_run_id;
