"""The one test kit: waiting (wait_for), building Settings, and the local venue in
a process of its own. Shared by every test folder and by benchmarks/; imported as
``from tests.support import ...`` (pyproject puts the repository root on sys.path)."""

from tests.support.settings import (
    ROOT,
    SHIPPED_CONFIG,
    UNIVERSE,
    merged,
    settings_from,
    shipped_settings,
    with_sections,
    write_config,
)
from tests.support.venue import VenueProcess, venue_env
from tests.support.waiting import DEFAULT_TIMEOUT, wait_for, wait_for_async

__all__ = [
    "DEFAULT_TIMEOUT",
    "ROOT",
    "SHIPPED_CONFIG",
    "UNIVERSE",
    "VenueProcess",
    "merged",
    "settings_from",
    "shipped_settings",
    "venue_env",
    "wait_for",
    "wait_for_async",
    "with_sections",
    "write_config",
]
