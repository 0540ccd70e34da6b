"""The CI gate and checkpoint selection (DESIGN.md sections 3 and 5).

A check whose figure the data cannot give (no interval, correctness unknown, a pathology the
runs cannot tell) FAILS with a reason: a gate never passes what it could not verify. A
pathology rate known for part of the samples is checked as if every unknown sample had it.
"""

from .checks import Check, GateResult, evaluate, gate
from .policy import GatePolicy, PolicyError, load_policy, policy_with
from .select import Candidate, Selection, cheapest, select_checkpoint

__all__ = ["Candidate", "Check", "GatePolicy", "GateResult", "PolicyError", "Selection", "cheapest", "evaluate",
           "gate", "load_policy", "policy_with", "select_checkpoint"]
