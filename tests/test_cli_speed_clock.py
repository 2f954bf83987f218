"""``mikey speed`` times the process's CPU time by default and wall-clock time with ``--elapsed``.

The clocks are replaced by counters that advance with each timed call, so these
tests check which clock is read, never how fast anything runs.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from mikey.cli import main, speed
from mikey.cli.plugin_base import SpeedCase


class _Clock:
    """Advances by ``step`` seconds per call of :meth:`tick` (the timed function)."""

    def __init__(self, step: float) -> None:
        self.step = step
        self.now = 0.0

    def tick(self) -> None:
        self.now += self.step

    def __call__(self) -> float:
        return self.now


@pytest.fixture()
def clocks(monkeypatch: pytest.MonkeyPatch) -> tuple[_Clock, _Clock]:
    cpu, wall = _Clock(0.001), _Clock(0.003)  # 1 ms of CPU, 3 ms of wall-clock per call
    monkeypatch.setattr(speed.time, "process_time", cpu)
    monkeypatch.setattr(speed.time, "perf_counter", wall)
    return cpu, wall


def test_measure_reads_cpu_time_unless_elapsed(clocks: tuple[_Clock, _Clock]) -> None:
    cpu, wall = clocks

    def work() -> None:
        cpu.tick()
        wall.tick()

    assert speed.measure(work, quick=True) == pytest.approx(1000.0)
    assert speed.measure(work, quick=True, elapsed=True) == pytest.approx(3000.0)


def test_run_speed_rows_and_baselines_share_the_clock(
    clocks: tuple[_Clock, _Clock], monkeypatch: pytest.MonkeyPatch
) -> None:
    cpu, wall = clocks

    def work() -> None:
        cpu.tick()
        wall.tick()

    def baseline() -> None:  # half a row on either clock
        cpu.now += cpu.step / 2
        wall.now += wall.step / 2

    monkeypatch.setattr(speed, "baseline_cases", lambda names=None: {n: baseline for n in names or ()})
    cases = [SpeedCase("fake row", work, baseline="modexp1024")]
    for elapsed, us in ((False, 1000.0), (True, 3000.0)):
        baselines, rows = speed.run_speed(["fake"], quick=True, cases=cases, elapsed=elapsed)
        assert set(baselines) == {"hmac-sha1", "modexp1024"}
        assert baselines["modexp1024"] == pytest.approx(us / 2)
        assert rows[0].us_per_op == pytest.approx(us) and rows[0].ratio_to_baseline == pytest.approx(2.0)


def test_cli_reports_its_clock(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["speed", "--quick", "--json", "decode"]) == 0
    out: dict[str, Any] = json.loads(capsys.readouterr().out)
    assert out["clock"] == "cpu" and [r["name"] for r in out["results"]] == ["decode PSK I_MESSAGE"]
    assert main(["speed", "--quick", "--json", "--elapsed", "decode"]) == 0
    assert json.loads(capsys.readouterr().out)["clock"] == "wall"
    assert main(["speed", "--quick", "decode"]) == 0
    assert "(CPU time)" in capsys.readouterr().out
    assert main(["speed", "--quick", "--elapsed", "decode"]) == 0
    assert "(wall-clock)" in capsys.readouterr().out
