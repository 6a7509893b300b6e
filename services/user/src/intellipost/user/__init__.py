"""IntelliPost user service: accounts, sessions and signing keys."""
