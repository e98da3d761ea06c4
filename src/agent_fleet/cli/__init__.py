"""The `agent-fleet` command: `main` (serve, config check), `db`, `remote` (tasks, agents),
`agent` (a pull agent) and `report`; `settings` and `client` are what they share."""
