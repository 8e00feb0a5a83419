"""Environment settings of the two functions, validated once and failing loudly.

`template.yaml` sets every variable named here; a missing or empty one is a deployment mistake,
so it raises at cold start with the variable's name rather than failing later on first use.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator


class SettingsError(RuntimeError):
    """The function's environment is incomplete or wrong."""


class _EnvSettings(BaseModel):
    model_config = ConfigDict(frozen=True, str_strip_whitespace=True, str_min_length=1)

    routes_file: Path
    quota_table: str

    @field_validator("routes_file")
    @classmethod
    def _under_task_root(cls, path: Path) -> Path:
        # A relative path is relative to the function's code, as Lambda unpacks it.
        root = os.environ.get("LAMBDA_TASK_ROOT")
        return Path(root) / path if root and not path.is_absolute() else path

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Self:
        env = os.environ if env is None else env
        values = {name: env.get(name.upper()) for name in cls.model_fields}
        missing = sorted(
            name.upper()
            for name, value in values.items()
            if not value and cls.model_fields[name].is_required()
        )
        values = {name: value for name, value in values.items() if value}
        if missing:
            raise SettingsError(f"{cls.__name__}: environment variables not set: {missing}")
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            raise SettingsError(f"{cls.__name__}: {exc}") from exc


class TriggerSettings(_EnvSettings):
    """What TriggerFunction reads from its environment."""

    ledger_table: str
    ingest_queue_url: str
    rejected_bucket: str
    # A record deferred more often, or for longer, is rejected as "deferred too long".
    max_deferrals: int = Field(default=48, ge=1)
    max_deferral_age_seconds: float = Field(default=6 * 3600, gt=0, le=20 * 3600)
    # The event source mapping's MaximumBatchingWindowInSeconds (0 to 300) and BatchSize.
    batching_window_seconds: float = Field(default=0, ge=0, le=300)
    batch_size: int = Field(default=1, ge=1, le=10000)


class SyncSettings(_EnvSettings):
    """What RecipientsSyncFunction reads from its environment."""

    cursor_table: str
    recipients_bucket: str
