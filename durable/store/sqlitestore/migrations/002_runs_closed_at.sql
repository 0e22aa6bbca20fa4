-- Retention deletes closed runs by closing time.

-- +goose Up
CREATE INDEX runs_closed_at ON runs (closed_at) WHERE closed_at IS NOT NULL;

-- +goose Down
DROP INDEX runs_closed_at;
