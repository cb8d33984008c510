"""Settings read once from the environment at cold start and passed down as arguments."""

from __future__ import annotations

import os
from functools import lru_cache

from pydantic import BaseModel, Field


class Settings(BaseModel):
    """Where the core's state lives. Only configuration knows the endpoint (AWS, LocalStack or moto)."""

    app_name: str = "backroom"
    table_name: str = "BackroomTable"
    bucket_name: str = "backroom-files"
    jobs_queue_url: str = ""
    region: str = "us-east-1"
    endpoint_url: str | None = None
    token_idle_seconds: int = Field(default=8 * 3600, gt=0)
    # Sessions and login throttling (README, "Sessions and login throttling").
    token_lifetime_seconds: int = Field(default=7 * 24 * 3600, gt=0)
    login_failures_per_account: int = Field(default=10, gt=0)
    login_failures_per_address: int = Field(default=100, gt=0)
    login_failure_window_seconds: int = Field(default=15 * 60, gt=0)
    password_hashes_at_once: int = Field(default=2, gt=0)
    password_hash_wait_seconds: float = Field(default=10.0, ge=0)

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        env = dict(os.environ if env is None else env)
        values: dict[str, object] = {
            "app_name": env.get("BACKROOM_APP_NAME"),
            "table_name": env.get("BACKROOM_TABLE"),
            "bucket_name": env.get("BACKROOM_BUCKET"),
            "jobs_queue_url": env.get("BACKROOM_JOBS_QUEUE_URL"),
            "region": env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION"),
            "endpoint_url": env.get("AWS_ENDPOINT_URL") or None,
            "token_idle_seconds": env.get("BACKROOM_TOKEN_IDLE_SECONDS"),
            "token_lifetime_seconds": env.get("BACKROOM_TOKEN_LIFETIME_SECONDS"),
            "login_failures_per_account": env.get("BACKROOM_LOGIN_FAILURES_PER_ACCOUNT"),
            "login_failures_per_address": env.get("BACKROOM_LOGIN_FAILURES_PER_ADDRESS"),
            "login_failure_window_seconds": env.get("BACKROOM_LOGIN_FAILURE_WINDOW_SECONDS"),
            "password_hashes_at_once": env.get("BACKROOM_PASSWORD_HASHES_AT_ONCE"),
            "password_hash_wait_seconds": env.get("BACKROOM_PASSWORD_HASH_WAIT_SECONDS"),
        }
        return cls.model_validate({k: v for k, v in values.items() if v is not None})


@lru_cache(maxsize=1)
def settings() -> Settings:
    """The process-wide settings, read on first use (never at import time)."""
    return Settings.from_env()
