"""Imports every kind of job so that the registry knows them all (workers import this)."""

from backroom.app import actions, deletes, exports  # noqa: F401  (runtime actions, deletes, exports)
from backroom.app import imports as runtime_imports  # noqa: F401  (runtime CSV imports)
from backroom.calcengine import calculations  # noqa: F401  (gateway calculations, batches)
from backroom.calcengine import imports as gateway_imports  # noqa: F401  (gateway imports, deletes)
from backroom.jobs import probe  # noqa: F401
from backroom.tasks import catalog, runner  # noqa: F401  (task runner and the built-in task actions)
