"""``mikey demo --sip`` (mikey.cli.demo_sip): the use case x method table through a real Kamailio.

The end-to-end test starts Kamailio and runs the one-to-one use case for PSK and DH (real
``mikey phone`` processes, SRTP media): it is skipped without the ``kamailio`` binary and fails
instead when ``CI`` is set (``.ci/run`` installs it).  The runner's own checks (a use case that
raises or answers for the wrong cell is a failed cell; unknown names are usage errors) run
without Kamailio.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sipproxy

from mikey.cli import demo_sip
from mikey.sip.usecases import USE_CASES, Observation, Outcome, UseCaseEnv


def test_one_to_one_psk_and_dh_through_kamailio(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    sipproxy.require_kamailio()
    code = demo_sip.main(["--case", "one-to-one", "--method", "psk", "--method", "dh", "--json",
                          "--sip-dir", str(tmp_path / "run")])
    out = capsys.readouterr().out
    report = json.loads(out)
    assert report["problems"] == []
    assert report["cases"] == ["one-to-one"] and report["methods"] == ["psk", "dh"]
    assert report["proxy"]["host"] == "127.0.0.1" and 0 < report["proxy"]["port"] < 65536
    cells = {(c["case"], c["method"]): c for c in report["cells"]}
    assert set(cells) == {("one-to-one", "psk"), ("one-to-one", "dh")}
    for cell in cells.values():
        assert cell["outcome"] == Outcome.KEYED, cell
        assert cell["media_ok"] is True, cell
        assert cell["seconds"] > 0
    assert report["counts"] == {Outcome.KEYED: 2}
    assert report["ok"] is True and code == 0
    # Kamailio ran in the kept directory, each cell in its own
    assert (tmp_path / "run" / "cells" / "one-to-one-psk").is_dir()
    assert (tmp_path / "run" / "cells" / "one-to-one-dh").is_dir()

    lines = demo_sip.render_sip_report(report)
    header = next(i for i, line in enumerate(lines) if line.startswith("use case"))
    assert lines[header].split() == ["use", "case", "psk", "dh"]
    assert lines[header + 1].split() == ["one-to-one", "keyed", "keyed"]
    assert lines[-1].startswith("OK: no cell failed (2 keyed)")


def _env(tmp_path: Path) -> UseCaseEnv:
    return UseCaseEnv("127.0.0.1", 5060, "mikey.test", tmp_path)


def test_a_use_case_that_raises_or_misreports_is_a_failed_cell(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    def raising(env: UseCaseEnv, method: str) -> Observation:
        raise RuntimeError("phone crashed\nwith a traceback")

    def misreporting(env: UseCaseEnv, method: str) -> Observation:
        return Observation("other", method, Outcome.KEYED, "")

    def strange(env: UseCaseEnv, method: str) -> Observation:
        return Observation("strange", method, "great", "all fine")

    def served(env: UseCaseEnv, method: str) -> Observation:
        assert env.workdir == tmp_path
        if method == "psk":
            return Observation("served", method, Outcome.KEYED, "media both ways", media_ok=True, data={"p": Path("x")})
        return Observation("served", method, Outcome.NOT_SERVED, "no group key")

    for name, func in (("raising", raising), ("misreporting", misreporting), ("strange", strange), ("served", served)):
        monkeypatch.setitem(USE_CASES, name, func)
    seen: list[str] = []
    cells = demo_sip.run_cells(lambda case, method: _env(tmp_path), ["raising", "misreporting", "strange", "served"],
                               ["psk", "dh"], progress=lambda c: seen.append(f"{c.observation.case}/{c.observation.method}"))
    assert seen == ["raising/psk", "raising/dh", "misreporting/psk", "misreporting/dh", "strange/psk", "strange/dh",
                    "served/psk", "served/dh"]
    by = {(c.observation.case, c.observation.method): c for c in cells}
    assert by[("raising", "psk")].failed
    assert by[("raising", "psk")].observation.detail == "RuntimeError: phone crashed\\nwith a traceback"
    assert by[("misreporting", "dh")].failed
    assert "reported other x dh when run as misreporting x dh" in by[("misreporting", "dh")].observation.detail
    assert by[("strange", "psk")].failed and "unknown outcome 'great'" in by[("strange", "psk")].observation.detail
    assert not by[("served", "psk")].failed and not by[("served", "dh")].failed
    assert by[("served", "psk")].to_dict()["data"] == {"p": "x"}  # JSON-safe
    json.dumps([c.to_dict() for c in cells])


def test_render_marks_failed_cells_and_missing_cases() -> None:
    report = {
        "ok": False, "cases": ["one-to-one", "forking"], "methods": ["psk", "dh"], "not_registered": ["voicemail"],
        "proxy": {"host": "127.0.0.1", "port": 5062, "domain": "mikey.test"}, "problems": [], "seconds": 3.2,
        "counts": {"keyed": 1, "same-key": 1, "own-keys": 1, "failed": 1},
        "cells": [
            {"case": "one-to-one", "method": "psk", "outcome": "keyed", "detail": "d1", "media_ok": True, "seconds": 1.0},
            {"case": "one-to-one", "method": "dh", "outcome": "failed", "detail": "no 200 OK", "media_ok": False,
             "seconds": 1.0},
            {"case": "forking", "method": "psk", "outcome": "same-key", "detail": "d3", "media_ok": True, "seconds": 0.5},
            {"case": "forking", "method": "dh", "outcome": "own-keys", "detail": "d4", "media_ok": True, "seconds": 0.7},
        ],
    }
    lines = demo_sip.render_sip_report(report)
    assert lines[0] == "mikey demo --sip: MIKEY's use cases in SIP calls through Kamailio at 127.0.0.1:5062 (domain mikey.test)"
    header = lines.index(next(line for line in lines if line.startswith("use case")))
    assert [line.split() for line in lines[header + 1:header + 3]] == [["one-to-one", "keyed", "failed"],
                                                                      ["forking", "same-key", "own-keys"]]
    assert "not in this build yet: voicemail" in lines
    assert lines[-2].startswith("FAILED (1 failed, 1 keyed, 1 own-keys, 1 same-key)")
    assert lines[-1] == "  - one-to-one x dh: no 200 OK"


def test_unknown_case_or_method_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert demo_sip.main(["--case", "teleport"]) == 2
    assert "unknown use case teleport" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        demo_sip.main(["--method", "rot13"])
    assert exc.value.code == 2
    assert demo_sip.main(["--call-timeout", "0"]) == 2
    assert "--call-timeout must be positive" in capsys.readouterr().err


def test_the_columns_are_every_method_and_the_rows_follow_the_issue() -> None:
    assert demo_sip.METHODS == ("psk", "pk", "dh", "dhhmac", "rsa-r", "sakke", "ticket", "ibake")
    rows = demo_sip.registered_cases()
    assert rows[0] == "one-to-one" and set(rows) == set(USE_CASES)
    assert rows == sorted(rows, key=lambda c: demo_sip.ISSUE_CASES.index(c) if c in demo_sip.ISSUE_CASES else 99)
