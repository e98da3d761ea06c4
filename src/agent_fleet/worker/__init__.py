"""The http_pull agent behind `agent-fleet agent`: register, pull, run, report."""
