"""The edge emulator: a local CloudFront stand-in (strategy, per-POP caches, origin group, logs)."""
