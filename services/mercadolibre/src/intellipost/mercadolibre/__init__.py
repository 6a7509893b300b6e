"""IntelliPost MercadoLibre service: marketplace connection, publishing, the shared rate limit."""
