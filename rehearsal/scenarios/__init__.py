"""Built-in rehearsal scenarios (TOML); see docs/rehearsal.md."""
