"""Examples of execdesk inside a team's own job (docs/api.md)."""
