"""Peer simulators: the parties and data the CS talks to, synthesised for tests and benchmarks."""
