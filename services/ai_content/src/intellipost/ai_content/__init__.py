"""IntelliPost ai content service: listing generation, quality control and caching."""
