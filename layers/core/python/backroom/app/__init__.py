"""The runtime app: its definition (entities, permissions), its records as the runtime API shows them.

`definition` declares entities and permission groups, `repository` keeps them, `querylang` parses
the runtime query language, `service` answers the runtime data routes through `records`.
"""
