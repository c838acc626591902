"""edgeproof core: the CLI, the error hierarchy and the canonical request."""
