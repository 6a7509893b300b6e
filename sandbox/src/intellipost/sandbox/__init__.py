"""A local stand-in of the MercadoLibre API (in-memory) for development and tests."""
