-- The issue a task came from, as a column: "the issue's live task" is an index
-- lookup, not a scan of the repository's tasks.
ALTER TABLE tasks ADD COLUMN issue_number INTEGER;
UPDATE tasks SET issue_number = json_extract(body, '$.source.issue_number');
CREATE INDEX tasks_issue ON tasks (repo, issue_number) WHERE issue_number IS NOT NULL;
