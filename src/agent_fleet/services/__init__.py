"""Use cases: each service loads state from the store, asks the domain, appends events."""
