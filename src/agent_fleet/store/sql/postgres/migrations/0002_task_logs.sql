-- Task output, per task and attempt (not events: too large, too chatty).
CREATE TABLE task_logs (
    task_id   TEXT    NOT NULL,
    attempt   INTEGER NOT NULL,
    length    BIGINT  NOT NULL DEFAULT 0,
    stored    BIGINT  NOT NULL DEFAULT 0,
    truncated BOOLEAN NOT NULL DEFAULT FALSE,
    PRIMARY KEY (task_id, attempt)
);

CREATE TABLE task_log_chunks (
    task_id   TEXT    NOT NULL,
    attempt   INTEGER NOT NULL,
    start     BIGINT  NOT NULL,
    data      BYTEA   NOT NULL,
    PRIMARY KEY (task_id, attempt, start)
);
