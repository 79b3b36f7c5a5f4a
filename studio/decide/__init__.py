"""Decide capability."""
