"""The pure core: states, events, decisions and policies. No I/O, no clock reads."""
