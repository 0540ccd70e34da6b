"""A row's per-token speedup (given or measured) and its effective speedup."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping

from qr_metrics.runs import Run
from qr_metrics.speedup import decode_timings, measured_speedup
from qr_metrics.stats import DEFAULT_BOOTSTRAP, BootstrapConfig


def effective_speedup(speedup: dict | None, ratio: dict | None, role: str) -> dict | None:
    """Effective speedup = per-token speedup / inflation ratio (DESIGN.md section 3).

    Its interval joins the ends of both intervals (speedup low over ratio high, speedup high
    over ratio low): conservative. A given speedup has no interval of its own (it counts
    as exact); a measured one is only here when it has one (:func:`resolve_speedup`).
    """
    if speedup is None:
        return None
    if role == "baseline":
        return dict(speedup)
    if ratio is None or not ratio["estimate"]:
        return None
    s_low = speedup["estimate"] if speedup["low"] is None else speedup["low"]
    s_high = speedup["estimate"] if speedup["high"] is None else speedup["high"]
    low = s_low / ratio["high"] if ratio.get("high") else None
    high = s_high / ratio["low"] if ratio.get("low") else None
    return {"estimate": speedup["estimate"] / ratio["estimate"], "low": low, "high": high}


@dataclass(frozen=True)
class PerTokenSpeedup:
    """A run's per-token speedup, as :func:`resolve_speedup` finds it.

    value: ``{"estimate", "low", "high"}``, or None when none is known or a measured one is
        withheld; ``low``/``high`` are None for a given speedup (a given number, no interval).
    source: where it comes from, ``given: ...`` or ``measured: ...`` (with the device).
    withheld: why a measured speedup is not shown (``one timing``, ``too noisy: ...``), else None.
    """

    value: dict | None = None
    source: str | None = None
    withheld: str | None = None


def resolve_speedup(
    run: Run, reference: Run | None, speedups: Mapping[str, float], config: BootstrapConfig = DEFAULT_BOOTSTRAP,
    name: Callable[[str], str] = str,
) -> PerTokenSpeedup:
    """The run's per-token speedup: ``speedups`` first, then run.json's ``speedup`` (both
    kept as given), then one measured from the side files' decode seconds per token (the
    run's own reference model over its low-bit one, else its baseline run's model over
    it), shown only from repeated timings whose interval excludes 1
    (``qr_metrics.speedup``), else withheld with the reason.
    """
    if run.precision in speedups:
        value = speedups[run.precision]
        return PerTokenSpeedup(_given(value), f"given: {name('speedups')} {run.precision}={value:g}")
    if run.speedup is not None:
        return PerTokenSpeedup(_given(run.speedup), "given: run.json speedup")
    own = decode_timings(s.side for s in run.samples if s.side is not None)
    if "lowbit" not in own:
        return PerTokenSpeedup()
    if "reference" in own:
        timed, where, devices = own["reference"], "this run's reference model over its low-bit one", [run.device]
    elif reference is not None and reference is not run:
        timed = decode_timings(s.side for s in reference.samples if s.side is not None).get("lowbit")
        if timed is None:
            return PerTokenSpeedup()
        where, devices = f"baseline {reference.name}'s over this run's", [reference.device, run.device]
    else:
        return PerTokenSpeedup()
    known = list(dict.fromkeys(d for d in devices if d))
    on = known[0] if len(known) == 1 else " vs ".join(known) if known else "device not recorded"
    source = f"measured: decode s/token of the side files, {where} ({on})"
    if len(known) > 1:
        return PerTokenSpeedup(None, source, f"timed on different devices ({on})")
    result = measured_speedup(timed, own["lowbit"], config)
    if not result.shown:
        return PerTokenSpeedup(None, source, result.withheld)
    return PerTokenSpeedup(result.speedup.as_dict(), source)


def _given(value: float) -> dict:
    return {"estimate": float(value), "low": None, "high": None}
