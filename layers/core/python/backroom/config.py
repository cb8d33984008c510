"""Settings read once from the environment at cold start and passed down as arguments.

Nothing that names where state lives has a default: the table is required by every function, and a
function that uses the bucket or the jobs queue says so at import (`require`), so that a deployment
that left its variable out fails at cold start, naming the variable, not at the first request.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import Literal

from pydantic import AliasChoices, Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

# What a function may need beyond the table; template.yaml gives each function the variables it needs.
Need = Literal["bucket_name", "jobs_queue_url"]


class MissingSettings(RuntimeError):
    """The environment lacks (or spoils) a setting this function needs; the message names the variables."""


class Settings(BaseSettings):
    """Where the core's state lives. The endpoints (AWS, LocalStack, the local stack's emulators) are not
    settings: boto3 reads them from configuration itself (backroom.aws)."""

    model_config = SettingsConfigDict(frozen=True, extra="ignore", env_ignore_empty=True, case_sensitive=True)

    app_name: str = Field(default="backroom", validation_alias="BACKROOM_APP_NAME")
    table_name: str = Field(min_length=1, validation_alias="BACKROOM_TABLE")
    bucket_name: str | None = Field(default=None, min_length=1, validation_alias="BACKROOM_BUCKET")
    jobs_queue_url: str | None = Field(default=None, min_length=1, validation_alias="BACKROOM_JOBS_QUEUE_URL")
    region: str = Field(default="us-east-1", validation_alias=AliasChoices("AWS_REGION", "AWS_DEFAULT_REGION"))
    token_idle_seconds: int = Field(default=8 * 3600, gt=0, validation_alias="BACKROOM_TOKEN_IDLE_SECONDS")
    # Sessions and login throttling (docs/security.md, "Sessions and login throttling").
    token_lifetime_seconds: int = Field(default=7 * 24 * 3600, gt=0, validation_alias="BACKROOM_TOKEN_LIFETIME_SECONDS")
    login_failures_per_account: int = Field(default=10, gt=0, validation_alias="BACKROOM_LOGIN_FAILURES_PER_ACCOUNT")
    login_failures_per_address: int = Field(default=100, gt=0, validation_alias="BACKROOM_LOGIN_FAILURES_PER_ADDRESS")
    login_failure_window_seconds: int = Field(
        default=15 * 60, gt=0, validation_alias="BACKROOM_LOGIN_FAILURE_WINDOW_SECONDS"
    )
    password_hashes_at_once: int = Field(default=2, gt=0, validation_alias="BACKROOM_PASSWORD_HASHES_AT_ONCE")
    password_hash_wait_seconds: float = Field(
        default=10.0, ge=0, validation_alias="BACKROOM_PASSWORD_HASH_WAIT_SECONDS"
    )

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        """Settings from a given environment (tests and benches build a core on a stack of their own)."""
        try:
            return cls.model_validate({key: value for key, value in env.items() if value != ""})
        except ValidationError as err:
            raise _missing(err) from None

    def needed(self, name: Need) -> str:
        """A setting the caller cannot do without: unset, it fails here, naming its variable."""
        value: str | None = getattr(self, name)
        if value is None:
            raise MissingSettings(f"{_variable(name)} is not set: this function's environment must give it")
        return value


def _variable(field: str) -> str:
    alias = Settings.model_fields[field].validation_alias
    return alias if isinstance(alias, str) else field


def _missing(err: ValidationError) -> MissingSettings:
    problems = "; ".join(
        f"{'/'.join(str(p) for p in e['loc'])} {'is not set' if e['type'] == 'missing' else e['msg']}"
        for e in err.errors()
    )
    return MissingSettings(f"the environment does not configure this function: {problems}")


@lru_cache(maxsize=1)
def settings() -> Settings:
    """The process-wide settings, read from the environment on first use."""
    try:
        return Settings()  # pydantic-settings fills the required fields from the environment
    except ValidationError as err:
        raise _missing(err) from None


def require(*needs: Need) -> Settings:
    """The process's settings, checked for what this function needs beyond the table: called at import."""
    found = settings()
    missing = [_variable(name) for name in needs if getattr(found, name) is None]
    if missing:
        raise MissingSettings(f"{', '.join(missing)} not set: this function's environment must give it")
    return found
