"""The Engine, one owner of trading state, in cohesive parts:

engine.py      the Engine: state, inbox, dispatch table, timers, start/stop
messages.py    what its own tasks post to the inbox (typed results of venue I/O)
recorder.py    check -> journal -> apply, and the portfolio's projection of each event
intents.py     signal batch -> sizing -> pre-trade risk -> intent; approvals, overrides, stop-loss exits
submits.py     durable SubmitSent, the submit, its outcome, the one unknown-outcome resolver, cancels
lifecycle.py   acks, fills, status changes, external orders
sync.py        venue reads (clock, assets, account, positions, bars), connectivity, reconciliation
halt.py        trips, trading state, kill switch, resume, flatten
publish.py     the event log and EngineSnapshot rows
market_view.py what signal sources see of the market"""

from engine.core.common import config_hash
from engine.core.engine import Engine, EngineStats
from engine.core.market_view import EngineMarketView

__all__ = ["Engine", "EngineMarketView", "EngineStats", "config_hash"]
