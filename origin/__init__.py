"""The reference origin: aiohttp + pyvips transformer, derivative/source stores, prescale."""
