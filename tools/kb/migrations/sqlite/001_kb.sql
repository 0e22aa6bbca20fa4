-- Knowledge base, version 1. Times are int64 Unix nanoseconds (UTC).

-- +goose Up
CREATE TABLE kb_documents (
    id         INTEGER PRIMARY KEY,
    key        TEXT    NOT NULL UNIQUE,
    title      TEXT    NOT NULL,
    body       TEXT    NOT NULL,
    tags       TEXT    NOT NULL DEFAULT '[]', -- JSON array, sorted
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
) STRICT;

-- One row per (document, tag), for the tag filter.
CREATE TABLE kb_document_tags (
    document_id INTEGER NOT NULL REFERENCES kb_documents (id) ON DELETE CASCADE,
    tag         TEXT    NOT NULL,
    PRIMARY KEY (tag, document_id)
) STRICT;
CREATE INDEX kb_document_tags_document ON kb_document_tags (document_id);

-- Full-text index over title and body, kept in step with kb_documents by
-- the triggers below (an external-content FTS5 table).
CREATE VIRTUAL TABLE kb_documents_fts USING fts5 (
    title, body,
    content = 'kb_documents', content_rowid = 'id',
    tokenize = 'porter unicode61 remove_diacritics 2'
);

-- +goose StatementBegin
CREATE TRIGGER kb_documents_ai AFTER INSERT ON kb_documents BEGIN
    INSERT INTO kb_documents_fts (rowid, title, body) VALUES (new.id, new.title, new.body);
END;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE TRIGGER kb_documents_ad AFTER DELETE ON kb_documents BEGIN
    INSERT INTO kb_documents_fts (kb_documents_fts, rowid, title, body) VALUES ('delete', old.id, old.title, old.body);
END;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE TRIGGER kb_documents_au AFTER UPDATE OF title, body ON kb_documents BEGIN
    INSERT INTO kb_documents_fts (kb_documents_fts, rowid, title, body) VALUES ('delete', old.id, old.title, old.body);
    INSERT INTO kb_documents_fts (rowid, title, body) VALUES (new.id, new.title, new.body);
END;
-- +goose StatementEnd

-- +goose Down
DROP TRIGGER kb_documents_au;
DROP TRIGGER kb_documents_ad;
DROP TRIGGER kb_documents_ai;
DROP TABLE kb_documents_fts;
DROP TABLE kb_document_tags;
DROP TABLE kb_documents;
