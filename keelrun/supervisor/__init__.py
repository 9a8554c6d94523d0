"""The supervisor: one thread, one selector loop, one reaper (see README "Design")."""
