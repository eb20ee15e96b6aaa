"""The policy file (version 1): loading with located errors, clause evaluation, decision records.

Public API: :func:`load_policy` returns a frozen :class:`Policy` or raises
:class:`PolicyError` (exit 2) naming file, line and key.
"""

from chaingate.policy.interface import CLAUSES, WAIVABLE_CLAUSES, ClauseResult, PolicyError
from chaingate.policy.loader import load_policy
from chaingate.policy.model import Policy
from chaingate.policy.record import Decision

__all__ = ["CLAUSES", "WAIVABLE_CLAUSES", "ClauseResult", "Decision", "Policy", "PolicyError", "load_policy"]
