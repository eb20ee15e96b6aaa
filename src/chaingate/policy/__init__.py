"""The policy file (version 1): loading with located errors, clause evaluation, decision records.

Public API: :func:`load_policy` returns a frozen :class:`Policy` or raises
:class:`PolicyError` (exit 2) naming file, line and key; :func:`signers_only_policy`
builds the same value from cosign-style identity flags, without a file.
"""

from chaingate.policy.interface import CLAUSES, WAIVABLE_CLAUSES, ClauseResult, PolicyError
from chaingate.policy.loader import load_policy
from chaingate.policy.model import Policy
from chaingate.policy.record import Decision
from chaingate.policy.signers import signers_only_policy

__all__ = [
    "CLAUSES",
    "WAIVABLE_CLAUSES",
    "ClauseResult",
    "Decision",
    "Policy",
    "PolicyError",
    "load_policy",
    "signers_only_policy",
]
