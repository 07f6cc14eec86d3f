"""Snapshots at rest: the format, writers, readers, object storage, output names."""
