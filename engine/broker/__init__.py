"""Brokers: the Broker protocol (base.py) and AlpacaBroker on alpaca-py (alpaca.py)."""
