"""Small bots a user could have written, each on an unmodified stock client library.

They run as their own processes (see `monitor/world/sim/clientbots.py`), configured only through the
environment, and are the scenarios' real-client normal traffic: what ccxt, python-binance and
binance-connector really send, not what this project thinks they send.
"""
