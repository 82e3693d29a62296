"""Reprocess with another model: the page, its reads and its audited writes (the work is classifier/reprocess.py)."""
