"""The ports: what the services need from the outside world, as Protocols.

One module per side of the world, imported by name (this package re-exports nothing,
so that a contract can tell who uses which port):

- `store`: the `EventStore` (events and projections, written together);
- `queries`: what reads ask for and get back (`TaskQuery`, `AgentQuery`, `RecordedEvent`);
- `signal`: the `TaskSignal` that wakes waiting claimers;
- `clock`: the `Clock`;
- `forge`: the code `Forge` and the events it sends (`IssueEvent`, `PullRequestEvent`);
- `hosts`: `HostRuns`, the detached agent-CLI runs on the `[[hosts]]`.

Adapters implement them (`SqliteEventStore`, `InMemoryEventStore`, `ForgejoClient`,
`HostRunner`, ...); services depend only on these.
"""
