"""execdesk operator console (Textual): renders engine snapshots, sends engine commands."""
