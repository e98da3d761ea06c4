-- Named queries for the PostgreSQL store (psycopg named parameters).

-- name: lock_task
-- Row locks are taken before the append lock, never after: no lock cycles with a
-- cursor reader waiting for the append lock.
SELECT body::text FROM tasks WHERE task_id = %(id)s FOR UPDATE

-- name: lock_agent
SELECT body::text FROM agents WHERE agent_id = %(id)s FOR UPDATE

-- name: insert_events
-- Numbers and inserts an append's events in one round trip. The shared append lock
-- (taken first, held to commit) never makes appenders wait for each other: it only
-- lets a cursor reader wait for the appends in flight (read_horizon). A (stream,
-- version) already taken inserts nothing and draws no number: the caller raises
-- ConcurrencyConflict. nextval is evaluated after the sort, so seq follows ord.
WITH append_lock AS MATERIALIZED (SELECT pg_advisory_xact_lock_shared(7305513, hashtext(current_schema()))),
     e AS (SELECT * FROM jsonb_to_recordset(%(events)s::jsonb)
               AS e(ord int, stream text, version int, type text, data jsonb, actor text,
                    at timestamptz)),
     taken AS (SELECT 1 FROM events JOIN e USING (stream, version))
INSERT INTO events (seq, stream, version, type, data, actor, at)
SELECT nextval('events_seq'), e.stream, e.version, e.type, e.data, e.actor, e.at
FROM append_lock, e
WHERE NOT EXISTS (SELECT 1 FROM taken)
ORDER BY e.ord
RETURNING seq

-- name: taken_version
-- Which of an append's (stream, version) pairs another append has already taken.
SELECT e.stream, e.version
FROM jsonb_to_recordset(%(events)s::jsonb) AS e(ord int, stream text, version int)
JOIN events USING (stream, version)
ORDER BY e.ord LIMIT 1

-- name: horizon_patience
-- New appends queue behind a reader waiting for the lock: an append that never
-- finishes (a frozen process mid-commit) must not stall every writer for long. The
-- reader gives up instead (StoreError); a duty tries again at its next tick.
SELECT set_config('lock_timeout', '5s', true)

-- name: horizon_lock
-- A cursor reader's horizon, step 1: the append lock exclusively, granted once every
-- append in flight has committed or rolled back (new appends queue behind it). One
-- lock per schema: installations sharing a database do not wait for each other.
SELECT pg_advisory_xact_lock(7305513, hashtext(current_schema()))

-- name: horizon
-- Step 2, still holding it: every seq up to here is final (committed or never will
-- be); later appends draw higher numbers. The reader's transaction then ends.
SELECT coalesce(max(seq), 0) FROM events

-- name: notify
-- Delivered at commit: each replica wakes the long-polls it concerns (postgres_signal.py).
SELECT pg_notify('agent_fleet_tasks', %(payload)s)

-- name: upsert_task
INSERT INTO tasks (task_id, version, state, agent_id, execution_mode, priority,
                   required_capabilities, repo, issue_number, created_at, deadline_at,
                   retry_at, held_until, spent_usd, spent_tokens, body)
VALUES (%(task_id)s, %(version)s, %(state)s, %(agent_id)s, %(execution_mode)s, %(priority)s,
        %(required_capabilities)s::jsonb, %(repo)s, %(issue_number)s, %(created_at)s,
        %(deadline_at)s, %(retry_at)s, %(held_until)s, %(spent_usd)s, %(spent_tokens)s,
        %(body)s::jsonb)
ON CONFLICT (task_id) DO UPDATE SET
    version = excluded.version, state = excluded.state, agent_id = excluded.agent_id,
    execution_mode = excluded.execution_mode, priority = excluded.priority,
    required_capabilities = excluded.required_capabilities, repo = excluded.repo,
    issue_number = excluded.issue_number, deadline_at = excluded.deadline_at, retry_at = excluded.retry_at,
    held_until = excluded.held_until, spent_usd = excluded.spent_usd,
    spent_tokens = excluded.spent_tokens, body = excluded.body

-- name: upsert_agent
INSERT INTO agents (agent_id, version, status, mode, body)
VALUES (%(agent_id)s, %(version)s, %(status)s, %(mode)s, %(body)s::jsonb)
ON CONFLICT (agent_id) DO UPDATE SET
    version = excluded.version, status = excluded.status, mode = excluded.mode,
    body = excluded.body

-- name: get_task
SELECT body::text FROM tasks WHERE task_id = %(task_id)s

-- name: get_agent
SELECT body::text FROM agents WHERE agent_id = %(agent_id)s

-- name: lock_claimer
-- The claimer's row lock serialises its own concurrent dequeues (capacity holds) and
-- its status changes: an agent that went offline or away takes nothing.
SELECT status FROM agents WHERE agent_id = %(id)s FOR UPDATE

-- name: count_held
SELECT count(*) FROM tasks WHERE agent_id = %(agent_id)s AND state IN ('assigned', 'running')

-- name: claim_plan
-- Walk the queue in index order and stop at the first match. Without this a
-- freshly filled table (statistics not yet analysed) gets a plan that sorts
-- every open task on each claim.
-- (set_config(..., true) is SET LOCAL as one statement, which a pipeline can carry.)
SELECT set_config('enable_bitmapscan', 'off', true), set_config('enable_sort', 'off', true)

-- name: claim_plan_reset
-- ...for the claim only: the rest of the transaction plans as usual.
SELECT set_config('enable_bitmapscan', 'on', true), set_config('enable_sort', 'on', true)

-- name: claim
-- One statement claims the best open task this agent can serve. SKIP LOCKED:
-- concurrent claimers (on any replica) pass over a row another is taking.
-- The routing rule is domain/matching.py's (can_serve, queue_order), in SQL.
WITH candidate AS (
    SELECT task_id FROM tasks
    WHERE state = 'created'
      AND held_until IS NULL  -- held: its repository's daily budget is spent
      AND execution_mode = ANY(%(modes)s)
      AND required_capabilities <@ %(capabilities)s::jsonb
    ORDER BY priority DESC, created_at, task_id
    LIMIT 1
    FOR UPDATE SKIP LOCKED)
UPDATE tasks SET state = 'assigned', agent_id = %(agent_id)s
FROM candidate WHERE tasks.task_id = candidate.task_id
RETURNING tasks.body::text

-- name: held_tasks
SELECT body::text FROM tasks WHERE agent_id = %(agent_id)s AND state IN ('assigned', 'running')
ORDER BY created_at, task_id

-- name: running_counts
SELECT agent_id, count(*) FROM tasks
WHERE agent_id IS NOT NULL AND state IN ('assigned', 'running') GROUP BY agent_id

-- name: count_by_state
SELECT state, count(*) FROM tasks GROUP BY state

-- name: timed_out
SELECT body::text FROM tasks
WHERE deadline_at IS NOT NULL AND deadline_at < %(now)s AND state IN ('assigned', 'running')
ORDER BY deadline_at LIMIT %(limit)s

-- name: retries_due
SELECT body::text FROM tasks
WHERE retry_at IS NOT NULL AND retry_at <= %(now)s AND state IN ('failed', 'agent_lost')
ORDER BY retry_at LIMIT %(limit)s

-- name: holds_due
SELECT body::text FROM tasks
WHERE held_until IS NOT NULL AND held_until <= %(now)s AND state = 'created'
ORDER BY held_until LIMIT %(limit)s

-- name: orphaned_tasks
-- Held tasks whose agent is not online (offline, deregistered, unknown): none may
-- wait on an absent agent. Held tasks are few: this walks them, not the agents.
SELECT t.body::text FROM tasks t LEFT JOIN agents a ON a.agent_id = t.agent_id
WHERE t.state IN ('assigned', 'running') AND coalesce(a.status, '') <> 'online'
ORDER BY t.created_at, t.task_id
LIMIT %(limit)s

-- name: stale_agents
SELECT a.body::text FROM agents a LEFT JOIN agent_heartbeats h ON h.agent_id = a.agent_id
WHERE a.status = 'online' AND a.mode = 'http_pull' AND coalesce(h.at, '') < %(cutoff)s
ORDER BY a.agent_id LIMIT %(limit)s

-- name: record_heartbeat
INSERT INTO agent_heartbeats (agent_id, at) VALUES (%(agent_id)s, %(at)s)
ON CONFLICT (agent_id) DO UPDATE SET at = excluded.at

-- name: last_heartbeat
SELECT at FROM agent_heartbeats WHERE agent_id = %(agent_id)s

-- name: last_heartbeats
-- Every agent's at once (one row per agent that ever beat): the agent list and dashboard.
SELECT agent_id, at FROM agent_heartbeats

-- name: stream_events
SELECT seq, type, stream, version, at, actor, data::text FROM events
WHERE stream = %(stream)s ORDER BY version

-- name: stream_events_after
-- One page of a stream's history, oldest first: the events API pages by version.
SELECT seq, type, stream, version, at, actor, data::text FROM events
WHERE stream = %(stream)s AND version > %(after)s ORDER BY version LIMIT %(limit)s

-- name: stream_events_before
-- The newest page before a version, newest first: the dashboard shows a history's tail.
SELECT seq, type, stream, version, at, actor, data::text FROM events
WHERE stream = %(stream)s AND version < %(before)s ORDER BY version DESC LIMIT %(limit)s

-- name: events_after
-- The whole log in pages: each event as one JSON object with its envelope merged in
-- (`at` in the fixed-width UTC form of codec.ts), decoded in one parse. Below the
-- horizon only: no append still in flight can commit a seq in this range.
SELECT seq, type,
       (data || jsonb_build_object(
           'stream_id', stream, 'version', version, 'actor', actor,
           'at', to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')))::text
FROM events WHERE seq > %(after)s AND seq <= %(upto)s ORDER BY seq LIMIT %(limit)s

-- name: all_tasks
SELECT body::text FROM tasks ORDER BY task_id

-- name: all_agents
SELECT body::text FROM agents ORDER BY agent_id

-- name: delete_tasks
DELETE FROM tasks

-- name: delete_agents
DELETE FROM agents

-- name: list_tasks
SELECT body::text FROM tasks
WHERE (%(state)s::text IS NULL OR state = %(state)s)
  AND (%(agent_id)s::text IS NULL OR agent_id = %(agent_id)s)
  AND (%(repo)s::text IS NULL OR repo = %(repo)s)
  AND (%(issue_number)s::integer IS NULL OR issue_number = %(issue_number)s)
  AND (%(after_created)s::text IS NULL OR (created_at, task_id) < (%(after_created)s, %(after_id)s))
ORDER BY created_at DESC, task_id DESC
LIMIT %(limit)s

-- name: list_agent_tasks
-- list_tasks for one agent: a plain equality lets the plan search tasks_agent and
-- sort that agent's rows, where the optional filter walks every task in the
-- listing order (a heartbeat's "cancelled since" grew with the whole table).
SELECT body::text FROM tasks
WHERE (%(state)s::text IS NULL OR state = %(state)s)
  AND agent_id = %(agent_id)s
  AND (%(repo)s::text IS NULL OR repo = %(repo)s)
  AND (%(issue_number)s::integer IS NULL OR issue_number = %(issue_number)s)
  AND (%(after_created)s::text IS NULL OR (created_at, task_id) < (%(after_created)s, %(after_id)s))
ORDER BY created_at DESC, task_id DESC
LIMIT %(limit)s

-- name: list_tasks_by_spend
-- The biggest spenders first (USD, then tokens): the tasks_spend index in order.
SELECT body::text FROM tasks
WHERE (%(state)s::text IS NULL OR state = %(state)s)
  AND (%(agent_id)s::text IS NULL OR agent_id = %(agent_id)s)
  AND (%(repo)s::text IS NULL OR repo = %(repo)s)
  AND (%(issue_number)s::integer IS NULL OR issue_number = %(issue_number)s)
ORDER BY spent_usd DESC, spent_tokens DESC, task_id
LIMIT %(limit)s

-- name: task_streams_since
-- The tasks a report over [since, now] must fold: every task with an event in the
-- window, and every task still waiting (it was in the queue all along).
SELECT DISTINCT stream FROM events WHERE at >= %(since)s::timestamptz AND type LIKE 'task.%%'
UNION
SELECT task_id FROM tasks WHERE state = 'created'

-- name: event_outlines
-- The histories of the given streams, by the (stream, version) key, as reports read
-- them: without the events that change neither state nor spend (started, progress,
-- pr_updated: progress can be most of a log), and with free text emptied (prompts,
-- titles, summaries and messages are most of the bytes). jsonb_set(..., false) leaves
-- absent paths alone.
SELECT seq, type, stream, version, at, actor,
       jsonb_set(jsonb_set(jsonb_set(jsonb_set(jsonb_set(data,
           '{prompt}', '""', false), '{title}', '""', false), '{message}', '""', false),
           '{receipt,summary}', '""', false), '{receipt,error}', 'null', false)::text
FROM events
WHERE stream = ANY(%(streams)s)
  AND type NOT IN ('task.started', 'task.progress', 'task.pr_updated')
-- Each history in order, straight off the (stream, version) key; ORDER BY seq led the
-- planner to walk the whole log by its primary key and filter.
ORDER BY stream, version

-- name: repo_receipts_since
-- The receipts of one repository's tasks since a moment (its spend today): the
-- window's events by time, joined to their task's repository.
SELECT e.seq, e.type, e.stream, e.version, e.at, e.actor, e.data::text
FROM events e JOIN tasks t ON t.task_id = e.stream
WHERE e.at >= %(since)s::timestamptz
  AND e.type IN ('task.review_pending', 'task.completed', 'task.failed')
  AND lower(t.repo) = lower(%(repo)s)
ORDER BY e.at, e.seq  -- by time, so the plan walks events_at rather than every seq

-- name: list_agents
SELECT body::text FROM agents
WHERE (%(status)s::text IS NULL OR status = %(status)s)
  AND (%(mode)s::text IS NULL OR mode = %(mode)s)
  AND (%(capability)s::text IS NULL OR body -> 'capabilities' ? %(capability)s)
ORDER BY agent_id

-- name: ensure_log_head
-- Two first chunks at once must not both start at 0: the head row serialises them.
INSERT INTO task_logs (task_id, attempt) VALUES (%(task_id)s, %(attempt)s)
ON CONFLICT (task_id, attempt) DO NOTHING

-- name: lock_log_head
SELECT length, stored, truncated FROM task_logs
WHERE task_id = %(task_id)s AND attempt = %(attempt)s FOR UPDATE

-- name: log_head
SELECT length, stored, truncated FROM task_logs
WHERE task_id = %(task_id)s AND attempt = %(attempt)s

-- name: upsert_log_head
INSERT INTO task_logs (task_id, attempt, length, stored, truncated)
VALUES (%(task_id)s, %(attempt)s, %(length)s, %(stored)s, %(truncated)s)
ON CONFLICT (task_id, attempt) DO UPDATE SET
    length = excluded.length, stored = excluded.stored, truncated = excluded.truncated

-- name: insert_log_chunk
INSERT INTO task_log_chunks (task_id, attempt, start, data)
VALUES (%(task_id)s, %(attempt)s, %(start)s, %(data)s)

-- name: read_log_chunks
SELECT start, data FROM task_log_chunks
WHERE task_id = %(task_id)s AND attempt = %(attempt)s AND start + length(data) > %(offset)s
ORDER BY start

-- name: record_delivery
-- Either key already present: nothing inserted, and the caller learns it was seen.
INSERT INTO webhook_deliveries (delivery_id, content_key, event, received_at)
VALUES (%(delivery_id)s, %(content_key)s, %(event)s, %(at)s)
ON CONFLICT DO NOTHING

-- name: forget_delivery
DELETE FROM webhook_deliveries WHERE delivery_id = %(delivery_id)s

-- name: read_cursor
SELECT seq FROM cursors WHERE name = %(name)s

-- name: advance_cursor
-- Only forward: two replicas following the same log never move it back.
INSERT INTO cursors (name, seq) VALUES (%(name)s, %(seq)s)
ON CONFLICT (name) DO UPDATE SET seq = GREATEST(cursors.seq, excluded.seq)

-- name: projection_task_rows
-- Stored task rows as `db rebuild` compares them: every column, in `task_row`'s order
-- (projection.TASK_COLUMNS), a keyset page at a time; JSONB as text (compared as data).
SELECT task_id, version, state, agent_id, execution_mode, priority,
       required_capabilities::text, repo, issue_number, created_at, deadline_at, retry_at,
       held_until, spent_usd, spent_tokens, body::text
FROM tasks WHERE task_id > %(after)s ORDER BY task_id LIMIT %(limit)s

-- name: projection_agent_rows
SELECT agent_id, version, status, mode, body::text
FROM agents WHERE agent_id > %(after)s ORDER BY agent_id LIMIT %(limit)s

-- name: delete_task
DELETE FROM tasks WHERE task_id = %(key)s

-- name: delete_agent
DELETE FROM agents WHERE agent_id = %(key)s
