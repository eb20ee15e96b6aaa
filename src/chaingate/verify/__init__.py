"""The gate: verify everything attached to an image against a policy, fail closed, and decide.

Public API: :func:`verify_image` returns a :class:`Decision` (with
:class:`ClauseResult` per clause); it raises only for usage errors.
"""

from chaingate.oci.interface import Progress, no_progress
from chaingate.policy.interface import ClauseResult
from chaingate.policy.record import Decision
from chaingate.verify.gate import verify_image

__all__ = ["ClauseResult", "Decision", "Progress", "no_progress", "verify_image"]
