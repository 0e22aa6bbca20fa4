-- Search attributes and memo. A run's search attributes are kept whole on
-- its row (jsonb, returned by GetRun and ListRuns, and merged in place by
-- an upsert) and, for ListRuns' filters, in an index table with one row per
-- attribute (per element of a keyword list). A GIN index on the jsonb
-- column would answer equality (containment) but not ranges, such as
-- amount >= 100 or due before a date; B-tree indexes on typed value
-- columns answer both, and keep one design for both stores. Keywords are
-- in value_text; ints, bools (0/1) and times (Unix nanoseconds) in
-- value_int; floats in value_float.
--
-- The memo is bytea, like a run's input: it is never queried, so the
-- engine's payload codec may transform it like any other payload.

-- +goose Up
ALTER TABLE keel_runs ADD COLUMN search_attributes jsonb;
ALTER TABLE keel_runs ADD COLUMN memo bytea;

-- keel_search_attributes: run_seq is keel_runs.seq, so that an equality
-- filter reads its runs from the index in ListRuns' order (seq) and pages
-- with it.
CREATE TABLE keel_search_attributes (
    run_seq     bigint           NOT NULL,
    key         text             NOT NULL,
    type        text             NOT NULL,
    value_text  text,
    value_int   bigint,
    value_float double precision
);
CREATE INDEX keel_search_attributes_run ON keel_search_attributes (run_seq, key);
CREATE INDEX keel_search_attributes_text ON keel_search_attributes (key, type, value_text, run_seq)
    WHERE value_text IS NOT NULL;
CREATE INDEX keel_search_attributes_int ON keel_search_attributes (key, type, value_int, run_seq)
    WHERE value_int IS NOT NULL;
CREATE INDEX keel_search_attributes_float ON keel_search_attributes (key, type, value_float, run_seq)
    WHERE value_float IS NOT NULL;

-- ListRuns' creation time filters.
CREATE INDEX keel_runs_created_at ON keel_runs (created_at);

-- +goose Down
DROP INDEX keel_runs_created_at;
DROP TABLE keel_search_attributes;
ALTER TABLE keel_runs DROP COLUMN memo;
ALTER TABLE keel_runs DROP COLUMN search_attributes;
