-- The event log is the truth; tasks and agents are projections folded from it
-- in the same transaction as each append.
CREATE TABLE events (
    seq      INTEGER PRIMARY KEY AUTOINCREMENT,  -- global order, never reused
    stream   TEXT    NOT NULL,
    version  INTEGER NOT NULL,
    type     TEXT    NOT NULL,
    data     TEXT    NOT NULL,                   -- JSON
    actor    TEXT    NOT NULL,
    at       TEXT    NOT NULL,
    UNIQUE (stream, version)                     -- optimistic concurrency
);

CREATE TABLE tasks (
    task_id               TEXT    PRIMARY KEY,
    version               INTEGER NOT NULL,
    state                 TEXT    NOT NULL,
    agent_id              TEXT,
    execution_mode        TEXT    NOT NULL,
    priority              INTEGER NOT NULL,
    required_capabilities TEXT    NOT NULL,      -- JSON array, matched in the claim
    repo                  TEXT,
    created_at            TEXT    NOT NULL,
    deadline_at           TEXT,                  -- assigned_at + timeout while held
    retry_at              TEXT,                  -- when an automatic retry is due
    body                  TEXT    NOT NULL       -- the whole Task as JSON
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
    body     TEXT    NOT NULL
);

-- Heartbeats are operational state, not events: they would flood the log.
CREATE TABLE agent_heartbeats (
    agent_id TEXT PRIMARY KEY,
    at       TEXT NOT NULL
);
