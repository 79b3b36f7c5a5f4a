"""Train capability."""
