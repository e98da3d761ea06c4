"""ssh_cli hosts: the `HostRuns` port over detached runs, locally or over SSH."""
