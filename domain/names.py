"""Validation of user-supplied names; they become paths and stream ids, so they are strict."""

from __future__ import annotations

import re
import uuid

from domain.errors import InvalidInput, NotFound

_MODEL_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
_VERSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,63}$")
_TAG_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:/-]{0,63}$")
MAX_REASON = 1000
MAX_TAG_VALUE = 256
MAX_TAGS = 64


def check_model_name(name: str) -> str:
    """Return ``name`` if it is a valid model name, else raise InvalidInput."""
    if not isinstance(name, str) or not _MODEL_NAME.fullmatch(name) or ".." in name:
        raise InvalidInput(
            f"invalid model name {name!r}: use 1-64 chars of a-z, 0-9, '_', '.', '-', "
            "starting with a letter or digit"
        )
    return name


def check_version(version: str) -> str:
    """Return ``version`` if it is a valid version label, else raise InvalidInput."""
    if not isinstance(version, str) or not _VERSION.fullmatch(version) or ".." in version:
        raise InvalidInput(
            f"invalid model version {version!r}: use 1-64 chars of A-Z, a-z, 0-9, "
            "'_', '.', '+', '-', starting with a letter or digit"
        )
    return version


def check_job_id(job_id: str) -> str:
    """Job ids are UUIDs; anything else names no job (NotFound)."""
    try:
        uuid.UUID(job_id)
    except (ValueError, TypeError):
        raise NotFound(f"unknown job {job_id!r} (job ids are UUIDs)") from None
    return job_id


def check_reason(reason: str | None) -> str | None:
    """Bound the free-text reason."""
    if reason is not None and len(reason) > MAX_REASON:
        raise InvalidInput(f"reason is {len(reason)} chars; the limit is {MAX_REASON}")
    return check_text(reason, "reason")


def check_text(value, field: str):
    """Refuse NUL characters anywhere in user text (PostgreSQL cannot store them)."""
    if isinstance(value, str):
        if "\x00" in value:
            raise InvalidInput(f"{field} contains a NUL character")
    elif isinstance(value, dict):
        for k, v in value.items():
            check_text(k, field)
            check_text(v, f"{field}.{k}")
    elif isinstance(value, list | tuple):
        for i, v in enumerate(value):
            check_text(v, f"{field}[{i}]")
    return value


def check_tags(tags: dict[str, str]) -> dict[str, str]:
    """Validate tag keys and values."""
    if len(tags) > MAX_TAGS:
        raise InvalidInput(f"{len(tags)} tags given; the limit is {MAX_TAGS}")
    for key, value in tags.items():
        if not _TAG_KEY.fullmatch(key):
            raise InvalidInput(f"invalid tag key {key!r}")
        if len(value) > MAX_TAG_VALUE:
            raise InvalidInput(f"tag {key!r} value is over {MAX_TAG_VALUE} chars")
    return check_text(tags, "tags")
