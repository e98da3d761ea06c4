"""Agent-CLI adapters: each builds an argv and reads the CLI's result (pure, no I/O).

`base` is what every adapter builds and reads (the runners are handed an adapter through
it); `catalog` names the built-in ones and picks the adapter of an agent type, which only
the composition roots (bootstrap, the `agent` command) and the settings' checks do.
"""
