"""A signers-only policy built from flags, for a quick check without a policy file.

cosign and ``gh attestation verify`` users check an image with two flags, the
certificate identity and its OIDC issuer. ``verify --certificate-identity S
--certificate-oidc-issuer I`` gives them the same: a :class:`Policy` whose only
clause is ``signers``, in enforce mode, built here so it is the same frozen
value the loader returns and the gate cannot tell the two apart.

Such a policy has no file, so the decision record must not pretend it has
one: its path is :data:`FLAGS_PATH` and its digest is the sha256 of a
canonical JSON of the flags (sorted keys, no spaces), so two runs with the
same flags record the same policy digest and a reader can recompute it.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

from chaingate.policy.interface import PolicyError
from chaingate.policy.model import Policy, RegexpProblem, Signer, compile_anchored

#: The path a flags-built policy records in place of a file.
FLAGS_PATH = "(flags)"
IDENTITY_FLAG = "--certificate-identity"
IDENTITY_REGEXP_FLAG = "--certificate-identity-regexp"
ISSUER_FLAG = "--certificate-oidc-issuer"


def _error(flag: str, problem: str, hint: str | None = None) -> PolicyError:
    return PolicyError(FLAGS_PATH, None, flag, problem, hint=hint)


def _anchored(text: str) -> re.Pattern[str]:
    try:
        return compile_anchored(text)
    except RegexpProblem as e:
        raise _error(IDENTITY_REGEXP_FLAG, e.message, e.hint) from None


def signers_only_policy(
    *, issuer: str, identity: str | None = None, identity_regexp: str | None = None
) -> Policy:
    """A policy of one signer (exact ``identity`` or anchored ``identity_regexp``, from ``issuer``), enforced.

    Raises :class:`PolicyError` (exit 2) naming the flag at fault: both or
    neither identity form, an empty value, an unanchored or broken regexp.
    """
    if (identity is None) == (identity_regexp is None):
        raise _error(
            f"{IDENTITY_FLAG}, {IDENTITY_REGEXP_FLAG}",
            "give exactly one of them, with " + ISSUER_FLAG,
        )
    if not issuer:
        raise _error(ISSUER_FLAG, "empty issuer", hint="e.g. https://token.actions.githubusercontent.com")
    flags = {ISSUER_FLAG: issuer}
    if identity is not None:
        if not identity:
            raise _error(IDENTITY_FLAG, "empty identity")
        flags[IDENTITY_FLAG] = identity
        signer = Signer(issuer, identity, None)
    else:
        assert identity_regexp is not None
        flags[IDENTITY_REGEXP_FLAG] = identity_regexp
        signer = Signer(issuer, None, _anchored(identity_regexp))
    canonical = json.dumps(flags, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return Policy(
        path=Path(FLAGS_PATH),
        digest="sha256:" + hashlib.sha256(canonical.encode("utf-8")).hexdigest(),
        mode="enforce",
        signers=(signer,),
    )
