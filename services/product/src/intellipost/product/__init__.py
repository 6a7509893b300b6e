"""IntelliPost product service: products, images and the listing lifecycle."""
