"""Polling for tests that wait on a live process: a generous timeout turns a hang into a failure, never a flake."""

import time

import pytest


def wait_for(read, done, what, timeout_s=120, interval_s=0.05):
    """Polls read() until done(value) and returns that value; fails after timeout_s."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = read()
        if done(value):
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}; last value: {value!r}")
        time.sleep(interval_s)
