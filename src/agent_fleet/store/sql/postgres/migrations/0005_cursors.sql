-- How far a duty that follows the event log (issue comments) has got, by name.
CREATE TABLE cursors (
    name TEXT PRIMARY KEY,
    seq  BIGINT NOT NULL
);
