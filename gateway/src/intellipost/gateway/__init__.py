"""IntelliPost API gateway: one entry point that routes, authenticates, correlates and traces."""
