"""kdexplain.utils.progressbar: plain progress lines with a rate and an ETA, on a fake clock."""

from __future__ import annotations

import io
import time

from kdexplain.utils.progressbar import LogProgress


def test_log_progress_prints_timed_lines_while_no_unit_finishes():
    # the clock is fake (the numbers are exact); only the timer thread runs on real time,
    # and the test waits for its line instead of racing it with a sleep
    clock, buf = _FakeClock(), io.StringIO()
    bar = LogProgress(total=4, desc="sweep", unit="ckpt", interval=0.01, stream=buf,
                      clock=clock)
    clock.now += 10.0
    bar.update(2)
    timed = "sweep: 2/4 ckpt (50%), 0.2 ckpt/s, ETA 10 s, elapsed 10 s"
    deadline = time.monotonic() + 120
    while timed not in buf.getvalue().splitlines() and time.monotonic() < deadline:
        time.sleep(0.01)
    bar.update(2)
    bar.close()
    bar.close()  # once
    lines = buf.getvalue().splitlines()
    assert lines[0] == "sweep: 0/4 ckpt (0%), 0 ckpt/s, ETA ?, elapsed 0 s"
    assert timed in lines[1:-1]  # printed by the timer, with no unit finished meanwhile
    assert lines[-1] == "sweep: 4/4 ckpt (100%), 0.4 ckpt/s, ETA 0 s, elapsed 10 s"
    assert list(LogProgress(range(3), stream=io.StringIO(), interval=10)) == [0, 1, 2]


class _FakeClock:
    """Seconds that move only when the test says so."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_log_progress_rate_and_eta_from_a_fake_clock():
    clock, buf = _FakeClock(), io.StringIO()
    bar = LogProgress(total=4, desc="quantify fc1", unit="step", interval=3600, stream=buf,
                      clock=clock)
    clock.now += 10.0
    bar.update(2)  # 2 steps in 10 s: 0.2 step/s, 2 left: ETA 10 s
    assert bar.line() == "quantify fc1: 2/4 step (50%), 0.2 step/s, ETA 10 s, elapsed 10 s"
    clock.now += 590.0
    bar.update(1)  # 3 in 600 s: 0.005 step/s, 1 left: 200 s
    assert bar.line() == ("quantify fc1: 3/4 step (75%), 0.005 step/s, ETA 3.3 min, "
                          "elapsed 10.0 min")
    bar.close()
    lines = buf.getvalue().splitlines()
    assert lines[0] == "quantify fc1: 0/4 step (0%), 0 step/s, ETA ?, elapsed 0 s"
    assert lines[-1].startswith("quantify fc1: 3/4 step (75%)") and len(lines) == 2
    assert LogProgress(total=1, stream=io.StringIO()).interval == 30.0  # the default

