"""Locust spike scenarios. The only package that may import locust (lazily, in its own process)."""
