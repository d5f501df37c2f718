"""Run a command under a memory limit: a cgroup v1 memory controller group (needs root).

Used by the past-RAM benchmark (``bench/past_ram.py``) and its short test
(``tests/engine/test_past_ram.py``). The group limits memory and memory+swap to the same
value, so the child can neither use more RAM nor escape to swap; the page cache of the
files it reads is charged to it too, which is the point: a collection whose files are
larger than the limit must be searched through the page cache, evicting as it goes.

Pages already cached by another process are charged to that process's group, not the
child's, so :func:`drop_file_cache` evicts a directory's (clean, fsynced) pages first.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path

__all__ = ["CGROUP_ROOT", "LimitedRun", "available", "drop_file_cache", "run_limited"]

CGROUP_ROOT = Path("/sys/fs/cgroup/memory")


def available() -> str | None:
    """None when limits can be imposed here, else the reason they cannot."""
    if os.geteuid() != 0:
        return "not root: cgroup v1 memory limits need root"
    if not (CGROUP_ROOT / "memory.limit_in_bytes").exists():
        return f"no cgroup v1 memory controller mounted at {CGROUP_ROOT}"
    if not os.access(CGROUP_ROOT, os.W_OK):
        return f"{CGROUP_ROOT} is not writable"
    return None


def drop_file_cache(directory: str | os.PathLike[str]) -> int:
    """Evict the cached pages of every file under ``directory`` (posix_fadvise
    DONTNEED; the files must be synced). Returns the bytes of files visited."""
    total = 0
    for dirpath, _dirs, files in os.walk(directory):
        for name in files:
            path = os.path.join(dirpath, name)
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fsync(fd)
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
                total += os.fstat(fd).st_size
            finally:
                os.close(fd)
    return total


@dataclass
class LimitedRun:
    """The outcome of :func:`run_limited`: the child's exit code and output, whether the
    kernel's OOM killer acted in the group, and the group's peak memory use."""

    returncode: int
    stdout: str
    stderr: str
    oom_killed: bool
    max_usage_bytes: int
    limit_bytes: int


def run_limited(
    cmd: list[str], limit_bytes: int, *, timeout_s: float = 600, env: dict[str, str] | None = None
) -> LimitedRun:
    """Run ``cmd`` in a new memory cgroup limited to ``limit_bytes`` (RAM and RAM+swap),
    wait for it, and remove the group. Raises RuntimeError where :func:`available` says
    limits cannot be imposed."""
    reason = available()
    if reason is not None:
        raise RuntimeError(reason)
    group = CGROUP_ROOT / f"keeldb-bench-{uuid.uuid4().hex[:8]}"
    group.mkdir()
    try:
        (group / "memory.limit_in_bytes").write_text(str(limit_bytes))
        memsw = group / "memory.memsw.limit_in_bytes"
        if memsw.exists():
            memsw.write_text(str(limit_bytes))
        procs = str(group / "cgroup.procs")

        def enter_group() -> None:  # runs in the child between fork and exec
            with open(procs, "w") as f:
                f.write(str(os.getpid()))

        proc = subprocess.run(
            cmd,
            preexec_fn=enter_group,
            capture_output=True,
            text=True,
            timeout=timeout_s,
            env=env,
        )
        oom = _oom_kills(group) > 0
        return LimitedRun(
            proc.returncode,
            proc.stdout,
            proc.stderr,
            oom,
            int((group / "memory.max_usage_in_bytes").read_text()),
            limit_bytes,
        )
    finally:
        _remove_group(group)


def _oom_kills(group: Path) -> int:
    for line in (group / "memory.oom_control").read_text().splitlines():
        key, _, value = line.partition(" ")
        if key == "oom_kill":
            return int(value)
    return 0


def _remove_group(group: Path) -> None:
    # The child has exited; move any stray task out, then remove the (empty) group.
    try:
        for pid in (group / "cgroup.procs").read_text().split():
            (CGROUP_ROOT / "cgroup.procs").write_text(pid)
        group.rmdir()
    except OSError:
        pass
