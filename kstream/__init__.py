"""kstream: copy a Kubernetes cluster out through watch-list streams."""

__version__ = "0.1.0"
