-- The event log is the truth; tasks and agents are projections folded from it
-- in the same transaction as each append (the same design as the SQLite store).
CREATE TABLE events (
    seq      BIGINT      PRIMARY KEY,          -- global, gap-free: assigned under the append lock
    stream   TEXT        NOT NULL,
    version  INTEGER     NOT NULL,
    type     TEXT        NOT NULL,
    data     JSONB       NOT NULL,
    actor    TEXT        NOT NULL,
    at       TIMESTAMPTZ NOT NULL,
    UNIQUE (stream, version)                   -- optimistic concurrency
);

-- One row: the last seq handed out. Updated under the append lock, so a rolled
-- back append gives its numbers back and readers never see a gap.
CREATE TABLE event_counter (
    id   BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (id),
    last BIGINT  NOT NULL
);
INSERT INTO event_counter (id, last) VALUES (TRUE, 0);

CREATE TABLE tasks (
    task_id               TEXT        PRIMARY KEY,
    version               INTEGER     NOT NULL,
    state                 TEXT        NOT NULL,
    agent_id              TEXT,
    execution_mode        TEXT        NOT NULL,
    priority              INTEGER     NOT NULL,
    required_capabilities JSONB       NOT NULL,
    repo                  TEXT,
    created_at            TEXT        NOT NULL,   -- fixed-width UTC text, as in SQLite
    deadline_at           TEXT,
    retry_at              TEXT,
    body                  JSONB       NOT NULL
);
CREATE INDEX tasks_queue ON tasks (state, priority DESC, created_at, task_id);
CREATE INDEX tasks_agent ON tasks (agent_id, state);
CREATE INDEX tasks_listing ON tasks (created_at DESC, task_id DESC);
CREATE INDEX tasks_deadline ON tasks (deadline_at) WHERE deadline_at IS NOT NULL;
CREATE INDEX tasks_retry ON tasks (retry_at) WHERE retry_at IS NOT NULL;

CREATE TABLE agents (
    agent_id TEXT    PRIMARY KEY,
    version  INTEGER NOT NULL,
    status   TEXT    NOT NULL,
    mode     TEXT    NOT NULL,
    body     JSONB   NOT NULL
);

-- Heartbeats are operational state, not events.
CREATE TABLE agent_heartbeats (
    agent_id TEXT PRIMARY KEY,
    at       TEXT NOT NULL
);
