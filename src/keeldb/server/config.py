"""Server settings: limits, API keys and roles. Standard library only (no FastAPI).

API keys come from three places, all merged: ``--api-key KEY`` (repeatable, admin),
the ``KEELDB_API_KEY`` environment variable (admin) and ``--keys-file PATH``, a JSON list
of ``{"key": str, "role": "admin" | "read-write" | "read-only", "workspaces": [str] | null}``.
A key whose ``workspaces`` is null or absent may use every workspace.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from keeldb.errors import InvalidArgumentError
from keeldb.protocol.api import API_KEY_ENV

__all__ = [
    "ADMIN",
    "READ_ONLY",
    "READ_WRITE",
    "ROLES",
    "ApiKey",
    "KeyStore",
    "Permission",
    "ServerConfig",
    "is_loopback",
    "load_keys_file",
]

ADMIN = "admin"
READ_WRITE = "read-write"
READ_ONLY = "read-only"
ROLES = (ADMIN, READ_WRITE, READ_ONLY)

Permission = Literal["read", "write", "admin"]

# What each role may do. "read": look at collections and their data; "write": change data
# and create/drop collections; "admin": server-wide views (/metrics).
_GRANTS: dict[str, frozenset[str]] = {
    ADMIN: frozenset({"read", "write", "admin"}),
    READ_WRITE: frozenset({"read", "write"}),
    READ_ONLY: frozenset({"read"}),
}


# What each permission lets a key do, in the words of a 403's message.
_ACTIONS: dict[str, str] = {
    "read": "reading data",
    "write": "changing data",
    "admin": "server administration",
}


def _digest(key: str) -> bytes:
    # Comparing fixed-length digests keeps compare_digest's time independent of the
    # length of the presented key as well as of its content.
    return hashlib.sha256(key.encode("utf-8")).digest()


@dataclass(frozen=True)
class ApiKey:
    """One configured key. ``workspaces`` None means every workspace."""

    key: str = field(repr=False)
    role: str = ADMIN
    workspaces: frozenset[str] | None = None
    name: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.key, str) or len(self.key) < 8:
            raise InvalidArgumentError("an API key must be a string of at least 8 characters")
        if self.role not in ROLES:
            raise InvalidArgumentError(f"unknown role {self.role!r}; expected one of {ROLES}")

    def allows(self, permission: Permission, workspace: str | None) -> bool:
        """True when this key's role grants ``permission`` and, if ``workspace`` is given,
        the key covers that workspace."""
        if permission not in _GRANTS[self.role]:
            return False
        return workspace is None or self.workspaces is None or workspace in self.workspaces

    def denial(self, permission: Permission, workspace: str | None) -> str:
        """The sentence a 403 answers when :meth:`allows` refused ``permission`` on
        ``workspace``: what the key's role does not allow and which key would, or which
        workspaces the key is limited to."""
        if permission in _GRANTS[self.role]:
            allowed = ", ".join(repr(w) for w in sorted(self.workspaces or ()))
            return f"this API key may only use the workspaces {allowed}, not {workspace!r}"
        where = f" in workspace {workspace!r}" if workspace is not None else ""
        needed = " or ".join(r for r in (READ_WRITE, ADMIN) if permission in _GRANTS[r])
        return (
            f"this API key has the {self.role} role, which does not allow "
            f"{_ACTIONS[permission]}{where if permission != ADMIN else ''} "
            f"(a{'n' if needed[0] in 'aeiou' else ''} {needed} key is needed)"
        )

    def sees_workspace(self, workspace: str) -> bool:
        """True when listings may show ``workspace`` to this key."""
        return self.workspaces is None or workspace in self.workspaces


class KeyStore:
    """The configured keys, looked up in constant time per key (``hmac.compare_digest``).

    An empty store means auth is off: every request is allowed.
    """

    def __init__(self, keys: list[ApiKey] | None = None) -> None:
        self._keys = [(_digest(k.key), k) for k in (keys or [])]

    @property
    def enabled(self) -> bool:
        """True when at least one key is configured (requests then need one)."""
        return bool(self._keys)

    def __len__(self) -> int:
        return len(self._keys)

    def lookup(self, presented: str) -> ApiKey | None:
        """The key equal to ``presented``, or None.

        Every configured key is compared (no early exit), so the time taken does not say
        which key, or how much of one, matched.
        """
        digest = _digest(presented)
        found: ApiKey | None = None
        for stored_digest, api_key in self._keys:
            if hmac.compare_digest(stored_digest, digest) and found is None:
                found = api_key
        return found


def load_keys_file(path: str | os.PathLike[str]) -> list[ApiKey]:
    """Read a keys file (JSON list of ``{"key", "role", "workspaces"}``).

    Raises :class:`InvalidArgumentError` naming the entry when the file is unreadable,
    not JSON, or an entry is malformed (unknown role, short key, bad workspaces).
    """
    try:
        raw: Any = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidArgumentError(f"cannot read keys file {path}: {exc}") from exc
    if not isinstance(raw, list):
        raise InvalidArgumentError(f"keys file {path}: expected a JSON list of objects")
    keys = []
    for i, entry in enumerate(raw):
        if not isinstance(entry, dict) or "key" not in entry:
            raise InvalidArgumentError(f"keys file {path}: entry {i} needs a 'key'")
        unknown = set(entry) - {"key", "role", "workspaces", "name"}
        if unknown:
            raise InvalidArgumentError(f"keys file {path}: entry {i}: unknown fields {unknown}")
        workspaces = entry.get("workspaces")
        if workspaces is not None and (
            not isinstance(workspaces, list) or not all(isinstance(w, str) for w in workspaces)
        ):
            raise InvalidArgumentError(
                f"keys file {path}: entry {i}: 'workspaces' must be a list of names or null"
            )
        try:
            keys.append(
                ApiKey(
                    key=entry["key"],
                    role=entry.get("role", READ_ONLY),
                    workspaces=frozenset(workspaces) if workspaces is not None else None,
                    name=str(entry.get("name", f"keys-file[{i}]")),
                )
            )
        except InvalidArgumentError as exc:
            raise InvalidArgumentError(f"keys file {path}: entry {i}: {exc}") from exc
    return keys


def is_loopback(host: str) -> bool:
    """True when ``host`` only accepts local connections (127.0.0.0/8, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass
class ServerConfig:
    """Everything the HTTP app needs besides the database. Defaults are the documented ones.

    ``max_body_bytes``: request bodies above it get 413. ``max_k`` / ``max_ef``: larger
    ``k`` / ``ef`` get 400. ``max_batch``: most ids / vectors in one upsert, get or delete
    and the largest scan ``limit`` (413 above). ``max_query_batch``: most queries in one
    search_batch (413 above). ``max_filter_depth``: deepest nesting of a filter (400).
    ``cors_origins``: empty means no CORS headers at all. ``threads``: size of the pool
    that runs reads (default: one per core, at least 2; more only contend for the GIL).
    ``write_threads``: size of the separate pool for writes, which mostly wait for fsync.
    ``threads_per_request``: BLAS/OpenMP threads one engine call
    may use (1: parallelism comes from concurrent requests; see
    :mod:`keeldb.server.threads`). ``public_docs``: serve /openapi.json and /docs without
    a key even when keys are configured. ``backup_dir``: the directory ``POST /v1/backup``
    writes backups under (created on first use); None refuses backups over HTTP.
    """

    keys: KeyStore = field(default_factory=KeyStore)
    max_body_bytes: int = 32 * 1024 * 1024
    max_k: int = 1000
    max_ef: int = 4096
    max_batch: int = 10_000
    max_query_batch: int = 1000
    max_filter_depth: int = 8
    cors_origins: list[str] = field(default_factory=list)
    threads: int = field(default_factory=lambda: max(2, os.cpu_count() or 2))
    write_threads: int = 4
    threads_per_request: int = 1
    public_docs: bool = False
    backup_dir: str | None = None

    def __post_init__(self) -> None:
        for name in (
            "max_body_bytes",
            "max_k",
            "max_ef",
            "max_batch",
            "max_query_batch",
            "max_filter_depth",
            "threads",
            "write_threads",
            "threads_per_request",
        ):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise InvalidArgumentError(f"{name} must be a positive integer, got {value!r}")

    @staticmethod
    def collect_keys(
        api_keys: list[str] | None = None,
        keys_file: str | os.PathLike[str] | None = None,
        env: dict[str, str] | None = None,
    ) -> KeyStore:
        """Merge ``--api-key`` values, the ``KEELDB_API_KEY`` variable of ``env`` (default
        ``os.environ``) and a keys file into one :class:`KeyStore`."""
        environ = os.environ if env is None else env
        keys = [ApiKey(k, ADMIN, None, f"--api-key[{i}]") for i, k in enumerate(api_keys or [])]
        if environ.get(API_KEY_ENV):
            keys.append(ApiKey(environ[API_KEY_ENV], ADMIN, None, API_KEY_ENV))
        if keys_file is not None:
            keys.extend(load_keys_file(keys_file))
        return KeyStore(keys)
