"""`python -m engine` runs the execdesk command line (same as the `execdesk` script)."""

from engine.cli import main

raise SystemExit(main())
