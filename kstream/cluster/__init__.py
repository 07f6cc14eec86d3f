"""Talking to a cluster: connection and auth, discovery, the plan, the streams, the runner."""
