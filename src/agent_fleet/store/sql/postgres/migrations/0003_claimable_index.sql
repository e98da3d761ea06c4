-- The claim reads open tasks in queue order and stops at the first match: a
-- partial index in exactly that order lets it do so without sorting the queue
-- (without it, a fresh table's stale statistics made the planner sort them all).
CREATE INDEX tasks_claimable ON tasks (priority DESC, created_at, task_id) WHERE state = 'created';
