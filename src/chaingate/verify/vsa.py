"""The decision's VSA: signed by the verifier's identity and attached to the verified digest.

The verdict is made before any of this and never changes because of it: a
VSA that cannot be signed or attached is reported in :class:`VsaAttachment`
(and logged), so a registry refusing the push cannot turn an allow into a
failed gate, nor a deny into anything else. Without an identity at hand the
record is simply unsigned (docs/design.md, "Decision record").
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chaingate.errors import ChaingateError
from chaingate.oci.reference import ArchiveReference
from chaingate.oci.stores import open_image
from chaingate.policy.record import VSA_PREDICATE_TYPE, Decision
from chaingate.signing.interface import AttestationResult
from chaingate.signing.tokens import ENV_GITHUB_TOKEN, ENV_GITHUB_URL, ENV_TOKEN, resolve_token

if TYPE_CHECKING:
    from chaingate.oci.registries import Registries
    from chaingate.signing.attest import PreparedSigner

log = logging.getLogger(__name__)

NO_IDENTITY = "no signing identity (flags, $SIGSTORE_ID_TOKEN or GitHub Actions)"


@dataclass(frozen=True)
class VsaAttachment:
    """Whether the VSA was signed and attached: the attestation when it was, the reason when not."""

    result: AttestationResult | None = None
    reason: str | None = None

    @property
    def signed(self) -> bool:
        return self.result is not None

    def to_dict(self) -> dict[str, Any]:
        """The ``vsaAttestation`` member of the verify output document."""
        if self.result is None:
            return {"signed": False, "reason": self.reason}
        return {"signed": True, **self.result.to_dict()}


def has_ambient_identity(env: Mapping[str, str]) -> bool:
    """Whether the environment offers a token: ``$SIGSTORE_ID_TOKEN`` or GitHub Actions' token service."""
    return bool(env.get(ENV_TOKEN, "").strip()) or bool(env.get(ENV_GITHUB_URL) and env.get(ENV_GITHUB_TOKEN))


def vsa_signer(
    *,
    identity_token: str | None,
    identity_token_file: Path | None,
    trust_config: Path | None,
    sign: bool = True,
    env: Mapping[str, str] = os.environ,
) -> PreparedSigner | None:
    """The signer for the decision's VSA, or None when no identity is at hand (the record stays unsigned).

    Unlike ``attest``, a gate without an identity is normal (a local check, a
    pull request), so only an identity that is offered is used. It is checked
    offline before the image is verified, so a bad token fails as a usage
    error before anything is read, as for ``attest``.
    """
    if not sign:
        return None
    if identity_token is None and identity_token_file is None and not has_ambient_identity(env):
        return None
    from chaingate.signing.attest import prepare_signer
    from chaingate.signing.trust import load_trust_config

    token = resolve_token(token=identity_token, token_file=identity_token_file, env=env)
    return prepare_signer(token, load_trust_config(trust_config))


def attach_vsa(
    image: str,
    decision: Decision,
    signer: PreparedSigner | None,
    registries: Registries,
    *,
    now: datetime,
) -> VsaAttachment:
    """Sign the decision's VSA and attach it to the verified digest of ``image`` (see the module docs)."""
    if signer is None:
        return VsaAttachment(reason=NO_IDENTITY)
    if not decision.digest:
        return VsaAttachment(reason="the image was not resolved; there is no digest to attest about")
    from chaingate.signing.attest import attest_image
    from chaingate.signing.predicates import LoadedPredicate

    try:
        opened = dataclasses.replace(open_image(image, registries), target=decision.digest)
        if isinstance(opened.reference, ArchiveReference):
            opened.store.close()
            return VsaAttachment(reason="a docker archive cannot carry attachments")
        loaded = LoadedPredicate(
            VSA_PREDICATE_TYPE, decision.vsa_statement()["predicate"], "chaingate verify"
        )
        with opened.store:
            result = attest_image(opened, loaded, signer, now=now)
    except ChaingateError as e:
        log.warning("the decision was not attached: %s", e.message)
        return VsaAttachment(reason=f"signing or attaching the VSA failed: {e.message}")
    return VsaAttachment(result=result)


def verify_document(decision: Decision, attachment: VsaAttachment) -> dict[str, Any]:
    """What ``verify`` writes with ``-o`` and prints with ``--format json``: the record, its VSA, its attachment.

    One function, so the file, the JSON on stdout and the CI adapters that
    read either never disagree about the shape.
    """
    document = decision.record()
    document["vsa"] = decision.vsa_statement() if decision.digest else None
    document["vsaAttestation"] = attachment.to_dict()
    return document
