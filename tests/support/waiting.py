"""The one way a test waits for the world: poll a check until it holds, within a deadline.

The twins, OpenBao, nginx and the controller run in real time, and much of what a test waits for
(a stored job version, a check status, a process exit) is not pushed to it. A fixed sleep is
either flaky or slow; a bounded poll of world state is neither. Every test uses this helper, so
a timeout always fails the same way: an AssertionError naming what did not hold and the last
value seen.

The definition lives in devstack/testing.py, because the in-process controller harness there
(used by chaos as well as by the tests) polls with it too and devstack must not import tests.
Test modules import it from here, the only part of the test tree they may import.
"""

from __future__ import annotations

from devstack.testing import eventually

__all__ = ["eventually"]
