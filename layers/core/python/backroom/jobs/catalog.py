"""Imports every kind of job so that the registry knows them all (workers import this)."""

from backroom.app import actions, deletes  # noqa: F401  (runtime actions and deletes of many records)
from backroom.calcengine import calculations, imports  # noqa: F401  (gateway imports, deletes, calculations, batches)
from backroom.jobs import probe  # noqa: F401
from backroom.tasks import catalog, runner  # noqa: F401  (task runner and the built-in task actions)
