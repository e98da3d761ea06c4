-- Named queries for the SQLite store. Each runs on the store's one thread.

-- name: insert_event
-- UNIQUE (stream, version) turns a lost race into an IntegrityError.
INSERT INTO events (stream, version, type, data, actor, at)
VALUES (:stream, :version, :type, :data, :actor, :at)
RETURNING seq

-- name: upsert_task
INSERT INTO tasks (task_id, version, state, agent_id, execution_mode, priority,
                   required_capabilities, repo, issue_number, created_at, deadline_at,
                   retry_at, held_until, spent_usd, spent_tokens, body)
VALUES (:task_id, :version, :state, :agent_id, :execution_mode, :priority,
        :required_capabilities, :repo, :issue_number, :created_at, :deadline_at,
        :retry_at, :held_until, :spent_usd, :spent_tokens, :body)
ON CONFLICT (task_id) DO UPDATE SET
    version = excluded.version, state = excluded.state, agent_id = excluded.agent_id,
    execution_mode = excluded.execution_mode, priority = excluded.priority,
    required_capabilities = excluded.required_capabilities, repo = excluded.repo,
    issue_number = excluded.issue_number,
    deadline_at = excluded.deadline_at, retry_at = excluded.retry_at,
    held_until = excluded.held_until, spent_usd = excluded.spent_usd,
    spent_tokens = excluded.spent_tokens, body = excluded.body

-- name: upsert_agent
INSERT INTO agents (agent_id, version, status, mode, body)
VALUES (:agent_id, :version, :status, :mode, :body)
ON CONFLICT (agent_id) DO UPDATE SET
    version = excluded.version, status = excluded.status, mode = excluded.mode,
    body = excluded.body

-- name: get_task
SELECT body FROM tasks WHERE task_id = :task_id

-- name: get_agent
SELECT body FROM agents WHERE agent_id = :agent_id

-- name: claimer
-- The claimer's status and load, read inside the claiming transaction: an agent that
-- went offline or away takes nothing, and max_concurrency cannot be overrun.
SELECT status,
       (SELECT count(*) FROM tasks
        WHERE agent_id = :agent_id AND state IN ('assigned', 'running'))
FROM agents WHERE agent_id = :agent_id

-- name: claim
-- The claim itself: one statement flips the best matching open task to
-- 'assigned'. It runs under BEGIN IMMEDIATE, so no other writer interleaves;
-- the full projection and the task.assigned event are written right after it,
-- in the same transaction. Capabilities: none required that the agent lacks.
-- A held task (its repository's daily budget is spent) waits for its release.
-- The routing rule is domain/matching.py's (can_serve, queue_order), in SQL.
UPDATE tasks SET state = 'assigned', agent_id = :agent_id
WHERE task_id = (
    SELECT t.task_id FROM tasks t
    WHERE t.state = 'created'
      AND t.held_until IS NULL
      AND t.execution_mode IN (SELECT value FROM json_each(:modes))
      AND NOT EXISTS (
          SELECT 1 FROM json_each(t.required_capabilities) AS r
          WHERE r.value NOT IN (SELECT value FROM json_each(:capabilities)))
    ORDER BY t.priority DESC, t.created_at, t.task_id
    LIMIT 1)
  AND state = 'created'
RETURNING body

-- name: held_tasks
SELECT body FROM tasks WHERE agent_id = :agent_id AND state IN ('assigned', 'running')
ORDER BY created_at, task_id

-- name: running_counts
SELECT agent_id, count(*) FROM tasks
WHERE agent_id IS NOT NULL AND state IN ('assigned', 'running') GROUP BY agent_id

-- name: count_by_state
SELECT state, count(*) FROM tasks GROUP BY state

-- name: timed_out
SELECT body FROM tasks
WHERE deadline_at IS NOT NULL AND deadline_at < :now AND state IN ('assigned', 'running')
ORDER BY deadline_at LIMIT :limit

-- name: retries_due
SELECT body FROM tasks
WHERE retry_at IS NOT NULL AND retry_at <= :now AND state IN ('failed', 'agent_lost')
ORDER BY retry_at LIMIT :limit

-- name: holds_due
SELECT body FROM tasks
WHERE held_until IS NOT NULL AND held_until <= :now AND state = 'created'
ORDER BY held_until LIMIT :limit

-- name: orphaned_tasks
-- Held tasks whose agent is not online (offline, deregistered, unknown): none may
-- wait on an absent agent. Held tasks are few: this walks them, not the agents.
SELECT t.body FROM tasks t LEFT JOIN agents a ON a.agent_id = t.agent_id
WHERE t.state IN ('assigned', 'running') AND coalesce(a.status, '') <> 'online'
ORDER BY t.created_at, t.task_id
LIMIT :limit

-- name: stale_agents
-- Only pull agents heartbeat; ssh_cli agents' liveness is their processes.
SELECT a.body FROM agents a LEFT JOIN agent_heartbeats h ON h.agent_id = a.agent_id
WHERE a.status = 'online' AND a.mode = 'http_pull' AND coalesce(h.at, '') < :cutoff
ORDER BY a.agent_id
LIMIT :limit

-- name: record_heartbeat
INSERT INTO agent_heartbeats (agent_id, at) VALUES (:agent_id, :at)
ON CONFLICT (agent_id) DO UPDATE SET at = excluded.at

-- name: last_heartbeat
SELECT at FROM agent_heartbeats WHERE agent_id = :agent_id

-- name: last_heartbeats
-- Every agent's at once (one row per agent that ever beat): the agent list and dashboard.
SELECT agent_id, at FROM agent_heartbeats

-- name: stream_events
SELECT seq, type, stream, version, at, actor, data FROM events
WHERE stream = :stream ORDER BY version

-- name: stream_events_after
-- One page of a stream's history, oldest first: the events API pages by version.
SELECT seq, type, stream, version, at, actor, data FROM events
WHERE stream = :stream AND version > :after ORDER BY version LIMIT :limit

-- name: stream_events_before
-- The newest page before a version, newest first: the dashboard shows a history's tail.
SELECT seq, type, stream, version, at, actor, data FROM events
WHERE stream = :stream AND version < :before ORDER BY version DESC LIMIT :limit

-- name: events_after
-- The whole log in pages (replays, copies, followers): each event as one JSON object,
-- its envelope merged in by SQLite (in C, on the reader's thread) so that decoding it
-- is one parse (codec.decode_event_json).
SELECT seq, type,
       json_set(data, '$.stream_id', stream, '$.version', version, '$.at', at,
                '$.actor', actor)
FROM events WHERE seq > :after ORDER BY seq LIMIT :limit

-- name: all_tasks
SELECT body FROM tasks ORDER BY task_id

-- name: all_agents
SELECT body FROM agents ORDER BY agent_id

-- name: delete_tasks
DELETE FROM tasks

-- name: delete_agents
DELETE FROM agents

-- name: list_tasks
-- Newest first, keyset-paginated on (created_at, task_id): stable under inserts.
SELECT body FROM tasks
WHERE (:state IS NULL OR state = :state)
  AND (:agent_id IS NULL OR agent_id = :agent_id)
  AND (:repo IS NULL OR repo = :repo)
  AND (:issue_number IS NULL OR issue_number = :issue_number)
  AND (:after_created IS NULL OR (created_at, task_id) < (:after_created, :after_id))
ORDER BY created_at DESC, task_id DESC
LIMIT :limit

-- name: list_agent_tasks
-- list_tasks for one agent: a plain equality lets the plan search tasks_agent and
-- sort that agent's rows, where the optional filter walks every task in the
-- listing order (a heartbeat's "cancelled since" grew with the whole table).
SELECT body FROM tasks
WHERE (:state IS NULL OR state = :state)
  AND agent_id = :agent_id
  AND (:repo IS NULL OR repo = :repo)
  AND (:issue_number IS NULL OR issue_number = :issue_number)
  AND (:after_created IS NULL OR (created_at, task_id) < (:after_created, :after_id))
ORDER BY created_at DESC, task_id DESC
LIMIT :limit

-- name: list_tasks_by_spend
-- The biggest spenders first (USD, then tokens): the tasks_spend index in order.
SELECT body FROM tasks
WHERE (:state IS NULL OR state = :state)
  AND (:agent_id IS NULL OR agent_id = :agent_id)
  AND (:repo IS NULL OR repo = :repo)
  AND (:issue_number IS NULL OR issue_number = :issue_number)
ORDER BY spent_usd DESC, spent_tokens DESC, task_id
LIMIT :limit

-- name: task_streams_since
-- The tasks a report over [since, now] must fold: every task with an event in the
-- window, and every task still waiting (it was in the queue all along).
SELECT DISTINCT stream FROM events WHERE at >= :since AND type LIKE 'task.%'
UNION
SELECT task_id FROM tasks WHERE state = 'created'

-- name: event_outlines
-- The histories of the given streams, by the (stream, version) key, as reports read
-- them: without the events that change neither state nor spend (started, progress,
-- pr_updated: progress can be most of a log), and with free text emptied (prompts,
-- titles, summaries and messages are most of the bytes). json_replace leaves absent
-- paths alone.
SELECT seq, type, stream, version, at, actor,
       json_replace(data, '$.prompt', '', '$.title', '', '$.message', '',
                    '$.receipt.summary', '', '$.receipt.error', NULL)
FROM events
WHERE stream IN (SELECT value FROM json_each(:streams))
  AND type NOT IN ('task.started', 'task.progress', 'task.pr_updated')
ORDER BY stream, version  -- each history in order, straight off the (stream, version) key

-- name: repo_receipts_since
-- The receipts of one repository's tasks since a moment (its spend today): the
-- window's events by time, joined to their task's repository.
SELECT e.seq, e.type, e.stream, e.version, e.at, e.actor, e.data
FROM events e JOIN tasks t ON t.task_id = e.stream
WHERE e.at >= :since
  AND e.type IN ('task.review_pending', 'task.completed', 'task.failed')
  AND lower(t.repo) = lower(:repo)
ORDER BY e.at, e.seq  -- by time, so the plan walks events_at rather than every seq

-- name: list_agents
SELECT a.body FROM agents a
WHERE (:status IS NULL OR a.status = :status)
  AND (:mode IS NULL OR a.mode = :mode)
  AND (:capability IS NULL OR EXISTS (
      SELECT 1 FROM json_each(json_extract(a.body, '$.capabilities')) c
      WHERE c.value = :capability))
ORDER BY a.agent_id

-- name: log_head
SELECT length, stored, truncated FROM task_logs WHERE task_id = :task_id AND attempt = :attempt

-- name: upsert_log_head
INSERT INTO task_logs (task_id, attempt, length, stored, truncated)
VALUES (:task_id, :attempt, :length, :stored, :truncated)
ON CONFLICT (task_id, attempt) DO UPDATE SET
    length = excluded.length, stored = excluded.stored, truncated = excluded.truncated

-- name: insert_log_chunk
INSERT INTO task_log_chunks (task_id, attempt, start, data)
VALUES (:task_id, :attempt, :start, :data)

-- name: read_log_chunks
-- Chunks that end after :offset, in order; the caller trims the first one.
SELECT start, data FROM task_log_chunks
WHERE task_id = :task_id AND attempt = :attempt AND start + length(data) > :offset
ORDER BY start

-- name: record_delivery
-- Either key already present: ignored, and the caller learns it was seen.
INSERT OR IGNORE INTO webhook_deliveries (delivery_id, content_key, event, received_at)
VALUES (:delivery_id, :content_key, :event, :at)

-- name: forget_delivery
DELETE FROM webhook_deliveries WHERE delivery_id = :delivery_id

-- name: read_cursor
SELECT seq FROM cursors WHERE name = :name

-- name: advance_cursor
-- Only forward: two replicas following the same log never move it back.
INSERT INTO cursors (name, seq) VALUES (:name, :seq)
ON CONFLICT (name) DO UPDATE SET seq = max(cursors.seq, excluded.seq)

-- name: projection_task_rows
-- Stored task rows as `db rebuild` compares them: every column, in `task_row`'s order
-- (projection.TASK_COLUMNS), a keyset page at a time.
SELECT task_id, version, state, agent_id, execution_mode, priority, required_capabilities,
       repo, issue_number, created_at, deadline_at, retry_at, held_until, spent_usd,
       spent_tokens, body
FROM tasks WHERE task_id > :after ORDER BY task_id LIMIT :limit

-- name: projection_agent_rows
SELECT agent_id, version, status, mode, body
FROM agents WHERE agent_id > :after ORDER BY agent_id LIMIT :limit

-- name: delete_task
DELETE FROM tasks WHERE task_id = :key

-- name: delete_agent
DELETE FROM agents WHERE agent_id = :key
