"""The dashboard: server-rendered pages with a little script for live updates."""
