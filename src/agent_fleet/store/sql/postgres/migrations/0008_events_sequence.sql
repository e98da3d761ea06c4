-- Appends no longer wait for each other: an event's seq comes from a sequence, drawn
-- under a *shared* append lock that every appender holds to its commit, instead of a
-- counter row updated under one exclusive lock (which put every commit of every
-- replica in one line). A rolled-back append leaves a hole in seq; cursor readers
-- take the lock exclusively for a moment to learn the horizon below which every
-- append has finished (postgres.py, docs/scale-out.md), so they never skip an event
-- that commits late with a lower seq.
--
-- Replicas of an older version number from event_counter: dropping it makes them
-- fail loudly rather than collide. Upgrade all replicas together (docs/scale-out.md).
-- CACHE 1 (the default): numbers are handed out in the order they are drawn.
CREATE SEQUENCE events_seq AS BIGINT CACHE 1 OWNED BY events.seq;
SELECT setval('events_seq', greatest(last, 1), last > 0) FROM event_counter;
DROP TABLE event_counter;
