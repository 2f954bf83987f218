"""``mikey demo --sip``: MIKEY's use cases in real SIP calls through Kamailio, method by method (issue 12).

MIKEY keys SRTP inside SIP signalling: the I_MESSAGE rides in the INVITE's SDP, the R_MESSAGE in
the 200 OK (``a=key-mgmt:mikey``, RFC 4567 §3.1, §4.1).  This command starts the Kamailio
proxy/registrar on loopback with the project's configuration (:class:`mikey.sip.kamailio.Kamailio`,
in a throw-away directory), then runs every registered use case (:mod:`mikey.sip.usecases`: MIKEY's
use cases of RFC 3830 §2.1 and RFC 6267 §3, each placing real calls between ``mikey phone``
processes with SRTP media) once per method, and prints the use case x method table: each cell is
the :class:`~mikey.sip.usecases.Observation` (what happened, and the detail: the MIKEY Error or
SIP status of a refusal, why a method does not serve a case, what the media did).

``--case NAME`` and ``--method NAME`` (both repeatable) select rows and columns; ``--json`` prints
one JSON object instead of text.  Exit status: 0 when no cell is ``failed`` (a refusal or a
method that cannot serve a case is an answer, not a failure), 1 when one is or Kamailio does not
start, 2 for a usage error.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import MikeyError
from ..sip.kamailio import Kamailio, kamailio_available
from ..sip.usecases import USE_CASES, Observation, Outcome, UseCaseEnv
from .common import add_json_option, one_line
from .plugins import MODE_NAMES

__all__ = [
    "ISSUE_CASES",
    "METHODS",
    "Cell",
    "add_sip_arguments",
    "load_cases",
    "registered_cases",
    "run_sip_demo",
    "run_cells",
    "sip_demo_report",
    "render_sip_report",
    "main",
]

#: The methods, as the CLI names them (the columns, in this order).
METHODS: tuple[str, ...] = MODE_NAMES
#: MIKEY's six use cases as issue 12 names them (RFC 3830 §2.1, RFC 6267 §3); those not registered
#: in this build are listed as such in the report.
ISSUE_CASES: tuple[str, ...] = ("one-to-one", "conference", "group-broadcast", "call-divert", "call-forking",
                                 "delayed-delivery")
#: Every outcome a use case may report (mikey.sip.usecases.Outcome); anything else is a bug (failed).
OUTCOMES: frozenset[str] = frozenset(
    {Outcome.KEYED, Outcome.OWN_KEYS, Outcome.SAME_KEY, Outcome.REKEYED, Outcome.REFUSED, Outcome.NOT_SERVED,
     Outcome.FAILED}
)
#: Seconds a use case waits for one step (UseCaseEnv.timeout).
DEFAULT_CALL_TIMEOUT = 15.0


@dataclass(frozen=True)
class Cell:
    """One cell of the table: the observation and how long the use case took."""

    observation: Observation
    seconds: float

    @property
    def failed(self) -> bool:
        return self.observation.outcome == Outcome.FAILED

    def to_dict(self) -> dict[str, Any]:
        o = self.observation
        return {
            "case": o.case,
            "method": o.method,
            "outcome": o.outcome,
            "detail": o.detail,
            "media_ok": o.media_ok,
            "seconds": round(self.seconds, 3),
            "data": _jsonable(o.data),
        }


def _jsonable(value: Any) -> Any:
    """*value* with anything JSON cannot carry turned into its text (observation data is free-form)."""
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        if isinstance(value, dict):
            return {str(k): _jsonable(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [_jsonable(v) for v in value]
        return str(value)
    return value


def add_sip_arguments(parser: argparse._ActionsContainer) -> None:
    """``--sip`` and its options (``mikey demo`` gives ``--json``)."""
    g = parser.add_argument_group("SIP calls through Kamailio (--sip: MIKEY's use cases, issue 12)")
    g.add_argument("--sip", action="store_true",
                   help="start Kamailio on loopback and run every use case for every method through real SIP calls, "
                   "then print the use case x method table")
    g.add_argument("--case", action="append", default=[], metavar="NAME",
                   help="with --sip: run only this use case (repeatable; default all: "
                   + ", ".join(ISSUE_CASES) + ")")
    g.add_argument("--method", action="append", default=[], metavar="NAME", choices=METHODS,
                   help="with --sip: run only this method (repeatable; default all: " + ", ".join(METHODS) + ")")
    g.add_argument("--call-timeout", type=float, default=DEFAULT_CALL_TIMEOUT, metavar="SECONDS",
                   help=f"with --sip: seconds a use case waits for one step (default {DEFAULT_CALL_TIMEOUT:g})")
    g.add_argument("--sip-dir", type=Path, metavar="DIR",
                   help="with --sip: work in DIR and keep it (Kamailio's and the phones' logs) instead of a "
                   "temporary directory")


def load_cases() -> str | None:
    """Import the use-case modules (each registers its case in USE_CASES with ``@use_case``).

    They drive ``mikey phone`` through :mod:`mikey.sip.phone`, which needs the SIP library of the
    ``sip`` extra (sippy); without it, the reason (``mikey demo`` without ``--sip`` works anyway).
    """
    try:
        from ..sip.usecases import broadcast, conference, divert, forking, one_to_one, voicemail  # noqa: F401
    except ModuleNotFoundError as exc:
        if (exc.name or "").partition(".")[0] != "sippy":
            raise
        return "the SIP library is not installed: pip install 'mikey[sip]' (sippy)"
    return None


def registered_cases() -> list[str]:
    """The registered use cases in the table's row order: the issue's order, then any others."""
    load_cases()
    return [c for c in ISSUE_CASES if c in USE_CASES] + [c for c in USE_CASES if c not in ISSUE_CASES]


def _selection(names: Sequence[str], known: Sequence[str]) -> list[str]:
    """*names* in *known*'s order without repeats, or all of *known* when none are given."""
    return [k for k in known if k in names] if names else list(known)


def run_cells(
    env_for: Callable[[str, str], UseCaseEnv],
    cases: Sequence[str],
    methods: Sequence[str],
    progress: Callable[[Cell], None] | None = None,
) -> list[Cell]:
    """Run each of *cases* for each of *methods* (in that order) and collect the cells.

    A use case that raises, or returns something other than an Observation for its own case and
    method with a known outcome, gives a ``failed`` cell saying so: one broken case must not hide
    the rest of the table.
    """
    cells = []
    for case in cases:
        run = USE_CASES[case]
        for method in methods:
            t0 = time.perf_counter()
            try:
                obs = _checked(run(env_for(case, method), method), case, method)
            except Exception as exc:  # noqa: BLE001 - any error of a use case is a failed cell, reported
                obs = Observation(case, method, Outcome.FAILED, f"{type(exc).__name__}: {one_line(str(exc))}")
            cell = Cell(obs, time.perf_counter() - t0)
            cells.append(cell)
            if progress is not None:
                progress(cell)
    return cells


def _checked(obs: object, case: str, method: str) -> Observation:
    if not isinstance(obs, Observation):
        return Observation(case, method, Outcome.FAILED, f"the use case returned {type(obs).__name__}, not an Observation")
    if (obs.case, obs.method) != (case, method):
        return Observation(case, method, Outcome.FAILED,
                           f"the use case reported {obs.case} x {obs.method} when run as {case} x {method}")
    if obs.outcome not in OUTCOMES:
        return Observation(case, method, Outcome.FAILED, f"unknown outcome {obs.outcome!r}: {obs.detail}")
    return obs


@contextmanager
def _workdir(keep: Path | None) -> Iterator[Path]:
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)
        yield keep
        return
    with tempfile.TemporaryDirectory(prefix="mikey-demo-sip-") as tmp:
        yield Path(tmp)


def sip_demo_report(
    cases: Sequence[str],
    methods: Sequence[str],
    *,
    timeout: float = DEFAULT_CALL_TIMEOUT,
    workdir: Path | None = None,
    progress: Callable[[Cell], None] | None = None,
) -> dict[str, Any]:
    """Start Kamailio, run *cases* x *methods*, stop Kamailio; the report (``report["ok"]``: no failed cell).

    Every cell gets its own scratch directory under the work directory (a temporary one unless
    *workdir* is given, which is then kept).
    """
    load_cases()
    t_start = time.perf_counter()
    report: dict[str, Any] = {
        "ok": False,
        "cases": list(cases),
        "methods": list(methods),
        "not_registered": [c for c in ISSUE_CASES if c not in USE_CASES],
        "proxy": None,
        "cells": [],
        "problems": [],
    }
    cells: list[Cell] = []
    with _workdir(workdir) as work:
        try:
            with Kamailio(work / "kamailio") as proxy:
                report["proxy"] = {"host": proxy.host, "port": proxy.port, "domain": proxy.domain}

                def env_for(case: str, method: str) -> UseCaseEnv:
                    cell_dir = work / "cells" / f"{case}-{method}"
                    cell_dir.mkdir(parents=True, exist_ok=True)
                    return UseCaseEnv(proxy.host, proxy.port, proxy.domain, cell_dir, timeout)

                cells = run_cells(env_for, cases, methods, progress)
        except (MikeyError, OSError) as exc:
            report["problems"].append(f"Kamailio: {one_line(str(exc))}")
    report["cells"] = [c.to_dict() for c in cells]
    counts: dict[str, int] = {}
    for c in cells:
        counts[c.observation.outcome] = counts.get(c.observation.outcome, 0) + 1
    report["counts"] = counts
    report["seconds"] = round(time.perf_counter() - t_start, 3)
    report["ok"] = not report["problems"] and len(cells) == len(cases) * len(methods) and not any(
        c.failed for c in cells
    )
    return report


# --- output -----------------------------------------------------------------------------------------


def render_sip_report(report: dict[str, Any]) -> list[str]:
    """The table (use case x method, the outcome in each cell), then every cell's detail."""
    proxy = report.get("proxy")
    where = f"Kamailio at {proxy['host']}:{proxy['port']} (domain {proxy['domain']})" if proxy else "Kamailio"
    lines = [f"mikey demo --sip: MIKEY's use cases in SIP calls through {where}", ""]
    cells = {(c["case"], c["method"]): c for c in report["cells"]}
    methods: list[str] = report["methods"]
    width = max([len("use case"), *(len(c) for c in report["cases"])]) + 2
    col = max([len(Outcome.NOT_SERVED), *(len(m) for m in methods)]) + 2
    lines.append("use case".ljust(width) + "".join(m.ljust(col) for m in methods).rstrip())
    for case in report["cases"]:
        row = [cells[(case, m)]["outcome"] if (case, m) in cells else "-" for m in methods]
        lines.append(case.ljust(width) + "".join(r.ljust(col) for r in row).rstrip())
    for case in report["cases"]:
        shown = [cells[(case, m)] for m in methods if (case, m) in cells]
        if not shown:
            continue
        lines += ["", case]
        for c in shown:
            media = "media ok" if c["media_ok"] else "no media"
            lines.append(f"  {c['method']:<7} {c['outcome']:<10} {media:<8} {c['seconds']:6.1f} s  {c['detail']}")
    if report.get("not_registered"):
        lines += ["", "not in this build yet: " + ", ".join(report["not_registered"])]
    lines.append("")
    counts = ", ".join(f"{n} {k}" for k, n in sorted(report.get("counts", {}).items()))
    if report["ok"]:
        lines.append(f"OK: no cell failed ({counts}) in {report['seconds']:.0f} s.")
    else:
        lines.append(f"FAILED ({counts or 'no cells'}) in {report['seconds']:.0f} s:")
        lines += [f"  - {p}" for p in report["problems"]]
        lines += [f"  - {c['case']} x {c['method']}: {c['detail']}" for c in report["cells"] if c["outcome"] == Outcome.FAILED]
    return lines


def _print_progress(cell: Cell) -> None:
    o = cell.observation
    print(f"  {o.case} x {o.method}: {o.outcome} ({cell.seconds:.1f} s)", file=sys.stderr, flush=True)


def run_sip_demo(args: argparse.Namespace) -> int:
    """``mikey demo --sip`` with the parsed options of :func:`add_sip_arguments` (and ``--json``)."""
    as_json = bool(getattr(args, "json", False))
    problem = load_cases()
    if problem is not None:
        print(f"mikey demo --sip: {problem}", file=sys.stderr)
        return 1
    unknown = [c for c in args.case if c not in USE_CASES]
    if unknown:
        known = ", ".join(registered_cases()) or "none"
        print(f"mikey demo --sip: unknown use case {', '.join(unknown)} (this build has: {known})", file=sys.stderr)
        return 2
    if args.call_timeout <= 0:
        print("mikey demo --sip: --call-timeout must be positive", file=sys.stderr)
        return 2
    if not kamailio_available():
        print("mikey demo --sip: kamailio is not installed (Debian/Ubuntu: apt-get install kamailio)", file=sys.stderr)
        return 1
    cases = _selection(args.case, registered_cases())
    methods = _selection(args.method, METHODS)
    report = sip_demo_report(cases, methods, timeout=args.call_timeout, workdir=args.sip_dir,
                             progress=None if as_json else _print_progress)
    if as_json:
        sys.stdout.write(json.dumps(report, indent=2) + "\n")
    else:
        print("\n".join(render_sip_report(report)))
    return 0 if report["ok"] else 1


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m mikey.cli.demo_sip`` (the same as ``mikey demo --sip``)."""
    p = argparse.ArgumentParser(prog="mikey demo --sip", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_sip_arguments(p)
    add_json_option(p)
    args = p.parse_args(argv)
    args.sip = True
    return run_sip_demo(args)


if __name__ == "__main__":
    sys.exit(main())

