"""The operator console: `/console`, server-rendered, signed in by a one-time link."""
