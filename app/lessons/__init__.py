"""Lessons: a guided path through the labs (``format``: the TOML files; ``probes``: the exact answers to their
questions; ``panel``: the lesson panel and presenter mode)."""
