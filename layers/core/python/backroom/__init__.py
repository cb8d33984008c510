"""Backroom core: identity, jobs and the shared plumbing the three API dialects stand on."""
