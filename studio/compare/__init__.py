"""Compare capability."""
