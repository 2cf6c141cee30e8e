"""Reflector pieces that need no server: backoff arithmetic and outage logging."""

from __future__ import annotations

import logging

from kdns.sources.reflector import ROUTINE_WINDOW, ApiHealth, Backoff


def test_backoff_doubles_with_jitter_up_to_the_cap():
    backoff = Backoff(initial=0.8, cap=30.0)
    delays = [backoff.next() for _ in range(10)]
    for n, delay in enumerate(delays):
        base = min(30.0, 0.8 * 2**n)
        assert base <= delay <= 2 * base  # jitter 1.0
    assert backoff.next(at_least=100.0) == 100.0  # Retry-After wins when longer


def test_routine_events_retry_at_once_then_back_off(monkeypatch):
    clock = [1000.0]
    monkeypatch.setattr("kdns.sources.reflector.time.monotonic", lambda: clock[0])
    backoff = Backoff()
    assert backoff.routine("gone") == 0.0
    clock[0] += 1
    assert 0.8 <= backoff.routine("gone") <= 1.6  # repeated within the window: back off
    clock[0] += 1
    assert 1.6 <= backoff.routine("gone") <= 3.2
    clock[0] += ROUTINE_WINDOW + 1
    assert backoff.routine("gone") == 0.0


def test_a_410_after_an_outage_relists_at_once(monkeypatch):
    clock = [1000.0]
    monkeypatch.setattr("kdns.sources.reflector.time.monotonic", lambda: clock[0])
    backoff = Backoff()
    backoff.next()  # the outage
    clock[0] += 2
    assert backoff.routine("dropped") == 0.0  # the stream the outage broke
    clock[0] += 1
    assert backoff.routine("gone") == 0.0  # the 410 that follows it


def test_backoff_resets_after_two_healthy_minutes(monkeypatch):
    clock = [1000.0]
    monkeypatch.setattr("kdns.sources.reflector.time.monotonic", lambda: clock[0])
    backoff = Backoff()
    for _ in range(8):
        backoff.next()
    clock[0] += 121
    assert 0.8 <= backoff.next() <= 1.6


def test_outage_is_logged_once_each_way(caplog):
    health = ApiHealth()
    with caplog.at_level(logging.DEBUG, logger="kdns.sources.reflector"):
        health.failed("services", "connection refused")
        health.failed("endpointslices", "connection refused")
        health.failed("services", "connection refused")
        health.succeeded()
        health.succeeded()
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2
    assert warnings[0].startswith("Kubernetes API unavailable (services: connection refused)")
    assert warnings[1].startswith("Kubernetes API available again after")
