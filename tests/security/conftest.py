"""Adversarial tests over HTTP against the local stack: the same stack and demo users as the integration tests."""

from tests.integration.conftest import api, dev, dev_token, local, sub, user  # noqa: F401 - fixtures
