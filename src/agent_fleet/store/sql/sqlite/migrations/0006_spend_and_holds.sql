-- Spend and budgets. What a task spent across its attempts, as columns so that
-- "the biggest spenders" is an index walk; when a held task may be claimed again
-- (the claim passes over held tasks); and the events' time, so that reports and
-- the daily repository budget read a bounded window of the log, not all of it.
-- Rows written before this migration carry no spend in their body either: both
-- read 0 until `agent-fleet db rebuild` folds the receipts again.
ALTER TABLE tasks ADD COLUMN held_until TEXT;
ALTER TABLE tasks ADD COLUMN spent_usd REAL NOT NULL DEFAULT 0;
ALTER TABLE tasks ADD COLUMN spent_tokens INTEGER NOT NULL DEFAULT 0;
CREATE INDEX tasks_held ON tasks (held_until) WHERE held_until IS NOT NULL;
CREATE INDEX tasks_spend ON tasks (spent_usd DESC, spent_tokens DESC, task_id);
CREATE INDEX events_at ON events (at);
