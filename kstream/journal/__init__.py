"""Journals (`dump --follow`): format, writer, directory rules, follow, reader, events."""
