"""Data capability."""
