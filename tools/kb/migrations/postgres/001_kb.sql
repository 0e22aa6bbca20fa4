-- Knowledge base, version 1. Times are int64 Unix nanoseconds (UTC).

-- +goose Up
CREATE TABLE kb_documents (
    id         BIGSERIAL PRIMARY KEY,
    key        TEXT   NOT NULL UNIQUE,
    title      TEXT   NOT NULL,
    body       TEXT   NOT NULL,
    tags       TEXT   NOT NULL DEFAULT '[]', -- JSON array, sorted
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    -- The search vector: title words weigh A, body words B.
    search     tsvector GENERATED ALWAYS AS (
        setweight(to_tsvector('english'::regconfig, title), 'A') ||
        setweight(to_tsvector('english'::regconfig, body), 'B')
    ) STORED
);
CREATE INDEX kb_documents_search ON kb_documents USING GIN (search);

-- One row per (document, tag), for the tag filter.
CREATE TABLE kb_document_tags (
    document_id BIGINT NOT NULL REFERENCES kb_documents (id) ON DELETE CASCADE,
    tag         TEXT   NOT NULL,
    PRIMARY KEY (tag, document_id)
);
CREATE INDEX kb_document_tags_document ON kb_document_tags (document_id);

-- +goose Down
DROP TABLE kb_document_tags;
DROP TABLE kb_documents;
