"""A tenant as a directory of declarative JSON files, and the plan and apply that make a stack match it
(docs/config.md). An operator's tool: it runs the core in the operator's process, never in a Lambda."""
