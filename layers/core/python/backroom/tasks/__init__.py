"""Account tasks: CSV-driven background work, declared per category and action."""
