"""engine.sim: a local venue that speaks Alpaca's Trading API v2, Market Data API v2,
the trade_updates stream and the msgpack market data stream, so the official
alpaca-py clients run against it unchanged (``url_override``).

It is a separate system that happens to live in this repository: nothing here
imports the rest of ``engine``. It shares only the data file config/universe.toml.
"""

from .venue import SimVenue

__all__ = ["SimVenue"]
