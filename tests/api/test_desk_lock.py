"""One session per journal, through the API as through every command: a Desk in one
process holds its journal; a second process's Desk.open on it is refused, naming
the holder. The lock itself is the session's (engine/lock.py, taken first in
Session.start), so the Desk holds it like every other front end."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from engine import Desk
from tests.api.conftest import SIM
from tests.pipeline.pipekit import CREDENTIALS
from tests.support import ROOT, shipped_settings

HOLDER = textwrap.dedent(
    """
    import sys
    from engine import Desk
    from engine.config import Credentials
    from tests.api.conftest import SIM
    from tests.support import shipped_settings

    creds = Credentials(key_id="PKLOCKHOLDER0001", secret_key="lock-holder-secret-0123456789")
    with Desk.open(shipped_settings(), journal=sys.argv[1], credentials=creds, sim=SIM):
        print("open", flush=True)
        sys.stdin.read()  # until the test closes our stdin
    """
)


def test_two_processes_cannot_both_open_the_same_journal_through_the_api(tmp_path):
    journal = tmp_path / "shared.sqlite"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(journal)],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "open"
        with pytest.raises(Exception, match=r"journal|lock|session") as refused:
            second = Desk.open(shipped_settings(), journal=journal, credentials=CREDENTIALS, sim=SIM)
            second.close()
        assert str(holder.pid) in str(refused.value) or "held" in str(refused.value)
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(60)
