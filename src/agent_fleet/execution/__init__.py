"""Running agent CLIs: workspaces and process groups, shared by both execution modes."""
