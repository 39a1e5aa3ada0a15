"""Brokers: the Broker protocol and typed venue records (base.py), and AlpacaBroker on
alpaca-py: the REST client (alpaca.py), wire translation (wire.py), the streams
(streams.py) and the outbound request limiter (ratelimit.py)."""
