"""execdesk engine: headless sizing, pre-trade risk, orders, journal and reconciliation."""
