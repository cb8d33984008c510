"""Identity: users, the account tree, and opaque session tokens."""
