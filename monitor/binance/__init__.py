"""The Binance wire: signing, the REST client, the user-data stream and payload parsers."""
