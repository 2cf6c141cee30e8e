"""Reflector pieces that need no server: backoff arithmetic and outage logging."""

from __future__ import annotations

import logging

import pytest

from kdns.sources.reflector import ROUTINE_WINDOW, ApiHealth, Backoff


def test_backoff_doubles_with_jitter_up_to_the_cap():
    backoff = Backoff(initial=0.8, cap=30.0)
    delays = [backoff.next() for _ in range(10)]
    for n, delay in enumerate(delays):
        base = min(30.0, 0.8 * 2**n)
        assert base <= delay <= 2 * base  # jitter 1.0
    assert backoff.next(at_least=100.0) == 100.0  # Retry-After wins when longer


def test_jitter_spreads_each_step_over_up_to_twice_its_length():
    draws = iter([0.0, 1.0, 0.5])
    backoff = Backoff(initial=0.8, cap=30.0, clock=lambda: 1000.0, jitter=lambda: next(draws))
    assert [backoff.next() for _ in range(3)] == pytest.approx([0.8, 3.2, 4.8])


def test_routine_events_retry_at_once_then_back_off():
    clock = [1000.0]
    backoff = Backoff(clock=lambda: clock[0])
    assert backoff.routine("gone") == 0.0
    clock[0] += 1
    assert 0.8 <= backoff.routine("gone") <= 1.6  # repeated within the window: back off
    clock[0] += 1
    assert 1.6 <= backoff.routine("gone") <= 3.2
    clock[0] += ROUTINE_WINDOW + 1
    assert backoff.routine("gone") == 0.0


def test_a_410_after_an_outage_relists_at_once():
    clock = [1000.0]
    backoff = Backoff(clock=lambda: clock[0])
    backoff.next()  # the outage
    clock[0] += 2
    assert backoff.routine("dropped") == 0.0  # the stream the outage broke
    clock[0] += 1
    assert backoff.routine("gone") == 0.0  # the 410 that follows it


def test_backoff_resets_after_two_healthy_minutes():
    clock = [1000.0]
    backoff = Backoff(clock=lambda: clock[0])
    for _ in range(8):
        backoff.next()
    clock[0] += 121
    assert 0.8 <= backoff.next() <= 1.6


def test_outage_is_logged_once_each_way(caplog):
    clock = [1000.0]
    health = ApiHealth(clock=lambda: clock[0])
    with caplog.at_level(logging.DEBUG, logger="kdns.sources.reflector"):
        health.failed("services", "connection refused")
        health.failed("endpointslices", "connection refused")
        health.failed("services", "connection refused")
        clock[0] += 12.5
        health.succeeded()
        health.succeeded()
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2
    assert warnings[0].startswith("Kubernetes API unavailable (services: connection refused)")
    assert warnings[1] == "Kubernetes API available again after 12.5 s"
