-- Search attributes and memo. A run's search attributes are kept whole on
-- its row (a JSON object, returned by GetRun and ListRuns) and, for
-- ListRuns' filters, in an index table with one row per attribute (per
-- element of a keyword list): a JSON column cannot be range-scanned per
-- key, while B-tree indexes on typed value columns answer equality and
-- range filters alike. Keywords are in value_text; ints, bools (0/1) and
-- times (Unix nanoseconds) in value_int; floats in value_float. The memo
-- is stored as given and never indexed.

-- +goose Up
ALTER TABLE runs ADD COLUMN search_attributes TEXT;
ALTER TABLE runs ADD COLUMN memo BLOB;

-- search_attributes: run_seq is runs.seq, so that an equality filter reads
-- its runs from the index in ListRuns' order (seq) and pages with it.
CREATE TABLE search_attributes (
    run_seq     INTEGER NOT NULL,
    key         TEXT    NOT NULL,
    type        TEXT    NOT NULL,
    value_text  TEXT,
    value_int   INTEGER,
    value_float REAL
) STRICT;
CREATE INDEX search_attributes_run ON search_attributes (run_seq, key);
CREATE INDEX search_attributes_text ON search_attributes (key, type, value_text, run_seq)
    WHERE value_text IS NOT NULL;
CREATE INDEX search_attributes_int ON search_attributes (key, type, value_int, run_seq)
    WHERE value_int IS NOT NULL;
CREATE INDEX search_attributes_float ON search_attributes (key, type, value_float, run_seq)
    WHERE value_float IS NOT NULL;

-- ListRuns' creation time filters.
CREATE INDEX runs_created_at ON runs (created_at);

-- +goose Down
DROP INDEX runs_created_at;
DROP TABLE search_attributes;
ALTER TABLE runs DROP COLUMN memo;
ALTER TABLE runs DROP COLUMN search_attributes;
