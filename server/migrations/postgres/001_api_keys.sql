-- +goose Up
-- API keys. The secret is never stored: hash is the hex SHA-256 of the
-- key's secret part, looked up by the key's ID.
CREATE TABLE keel_api_keys (
    id          TEXT PRIMARY KEY,
    hash        TEXT NOT NULL,
    subject     TEXT NOT NULL,
    scopes      TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    revoked_at  BIGINT
);

-- +goose Down
DROP TABLE keel_api_keys;
