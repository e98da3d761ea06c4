-- Task output, per task and attempt: not events (too large, too chatty), but
-- stored in the same file so a restart loses none of it.
CREATE TABLE task_logs (
    task_id   TEXT    NOT NULL,
    attempt   INTEGER NOT NULL,
    length    INTEGER NOT NULL DEFAULT 0,   -- bytes accepted so far (the ack offset)
    stored    INTEGER NOT NULL DEFAULT 0,   -- bytes kept (<= the limit)
    truncated INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (task_id, attempt)
);

CREATE TABLE task_log_chunks (
    task_id   TEXT    NOT NULL,
    attempt   INTEGER NOT NULL,
    start     INTEGER NOT NULL,             -- byte offset of this chunk in the kept log
    data      BLOB    NOT NULL,
    PRIMARY KEY (task_id, attempt, start)
);
