"""Imports every kind of job so that the registry knows them all (workers import this)."""

from backroom.jobs import probe  # noqa: F401
