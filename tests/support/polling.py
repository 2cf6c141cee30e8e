"""Waiting for a condition that a server, a thread or a fake reaches in its own time."""

from __future__ import annotations

import time


def eventually(check, *, timeout: float = 20.0, interval: float = 0.05):
    """Poll ``check`` until it returns something truthy; fail with its last value after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"still {value!r} after {timeout} s")
        time.sleep(interval)
