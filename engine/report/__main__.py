"""`python -m engine.report` (the same as `execdesk report`)."""

from engine.report.command import main

if __name__ == "__main__":
    raise SystemExit(main())
