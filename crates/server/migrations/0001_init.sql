-- OpenVHT platform schema: the tables, one text for SQLite and PostgreSQL
-- (both accept this DDL). Times are milliseconds since the Unix epoch.
-- What the two cannot share (the audit log's append-only triggers) is in
-- sqlite/ and postgres/0001_audit_append_only.sql, applied after this.
CREATE TABLE users (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    role TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    created BIGINT NOT NULL
);
CREATE TABLE projects (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    owner TEXT NOT NULL,
    created BIGINT NOT NULL
);
CREATE TABLE members (
    project TEXT NOT NULL,
    user_id TEXT NOT NULL,
    PRIMARY KEY (project, user_id)
);
CREATE TABLE models (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    description TEXT NOT NULL,
    authors TEXT NOT NULL,
    tags TEXT NOT NULL,
    annotations TEXT NOT NULL,
    license TEXT,
    visibility TEXT NOT NULL,
    owner TEXT NOT NULL,
    latest_version TEXT NOT NULL,
    search TEXT NOT NULL,
    created BIGINT NOT NULL,
    updated BIGINT NOT NULL
);
CREATE TABLE model_versions (
    model_id TEXT NOT NULL,
    hash TEXT NOT NULL UNIQUE,
    seq BIGINT NOT NULL,
    kind TEXT NOT NULL,
    sbml TEXT NOT NULL,
    metadata TEXT NOT NULL,
    created BIGINT NOT NULL,
    created_by TEXT NOT NULL,
    PRIMARY KEY (model_id, hash)
);
CREATE TABLE runs (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    status TEXT NOT NULL,
    progress DOUBLE PRECISION NOT NULL,
    model_id TEXT,
    version TEXT,
    params TEXT NOT NULL,
    dataset TEXT,
    project TEXT,
    permit TEXT,
    owner TEXT NOT NULL,
    backend TEXT NOT NULL,
    created BIGINT NOT NULL,
    started BIGINT,
    finished BIGINT,
    error TEXT,
    claim TEXT,
    worker TEXT,
    lease_until BIGINT,
    attempts BIGINT NOT NULL,
    completions BIGINT NOT NULL,
    cancel_requested BIGINT NOT NULL,
    artifacts TEXT NOT NULL
);
CREATE INDEX runs_status ON runs (status, created);
CREATE TABLE run_logs (
    run_id TEXT NOT NULL,
    time BIGINT NOT NULL,
    attempt BIGINT NOT NULL,
    n BIGINT NOT NULL,
    line TEXT NOT NULL
);
CREATE INDEX run_logs_run ON run_logs (run_id, time, attempt, n);
CREATE TABLE twins (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    model_id TEXT NOT NULL,
    version TEXT NOT NULL,
    parameters TEXT NOT NULL,
    uncertainty TEXT NOT NULL,
    provenance TEXT NOT NULL,
    owner TEXT NOT NULL,
    project TEXT,
    created BIGINT NOT NULL
);
CREATE TABLE datasets (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    project TEXT NOT NULL,
    classification TEXT NOT NULL,
    owner TEXT NOT NULL,
    columns TEXT NOT NULL,
    rows TEXT NOT NULL,
    row_count BIGINT NOT NULL,
    created BIGINT NOT NULL
);
CREATE TABLE permits (
    id TEXT PRIMARY KEY,
    project TEXT NOT NULL,
    dataset TEXT NOT NULL,
    purpose TEXT NOT NULL,
    valid_from BIGINT NOT NULL,
    valid_until BIGINT NOT NULL,
    granted_by TEXT NOT NULL,
    created BIGINT NOT NULL,
    revoked BIGINT
);
CREATE TABLE audit (
    seq BIGINT PRIMARY KEY,
    time BIGINT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    object TEXT NOT NULL,
    permit TEXT,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
CREATE TABLE settings (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
