"""The sources (poller, user-data stream, tap, log tailer) and the collector that runs them."""
