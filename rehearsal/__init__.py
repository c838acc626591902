"""The end-to-end spike rehearsal: start the stack, drive the load, analyse, report (``edgeproof rehearse``).

The top layer below the CLI: it may import every other part (edge, loadtest, origin, analytics, kernel);
nothing imports it but :mod:`edgeproof.cli`. Locust runs only in its own process (loadtest's runner).
"""
