"""`python -m agent_fleet` is the `agent-fleet` command."""

from agent_fleet.cli.main import main

main()
