"""`backroom`: the operator's command line for the HTTP API (login, gateway errands, tasks, jobs)."""
