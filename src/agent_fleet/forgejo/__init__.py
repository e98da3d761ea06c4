"""Forgejo: webhook verification and parsing (and, later, the API client)."""
