"""Honest in-memory servers and process helpers the tests share."""
