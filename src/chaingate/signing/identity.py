"""The signer identity a Fulcio certificate carries: SAN, issuer and the workflow claims.

Fulcio encodes the OIDC issuer and, for CI identities, the workflow's
repository, ref, commit and trigger in its own X.509 extensions
(https://github.com/sigstore/fulcio/blob/main/docs/oid-info.md). The
``1.3.6.1.4.1.57264.1.1`` to ``.6`` extensions hold raw UTF-8, the later ones a
DER UTF8String; both are read, the newer preferred. This is description,
not verification: the policy engine checks identities with sigstore's own
verifier.
"""

from __future__ import annotations

from cryptography import x509

from chaingate.signing.interface import SignerIdentity

_PREFIX = "1.3.6.1.4.1.57264.1."
#: Extension number -> claim name; the legacy raw-string ones are marked raw.
_EXTENSIONS: dict[int, tuple[str, bool]] = {
    1: ("issuer", True),
    2: ("githubWorkflowTrigger", True),
    3: ("githubWorkflowSha", True),
    4: ("githubWorkflowName", True),
    5: ("githubWorkflowRepository", True),
    6: ("githubWorkflowRef", True),
    8: ("issuer", False),
    9: ("buildSignerURI", False),
    10: ("buildSignerDigest", False),
    11: ("runnerEnvironment", False),
    12: ("sourceRepositoryURI", False),
    13: ("sourceRepositoryDigest", False),
    14: ("sourceRepositoryRef", False),
    15: ("sourceRepositoryIdentifier", False),
    16: ("sourceRepositoryOwnerURI", False),
    17: ("sourceRepositoryOwnerIdentifier", False),
    18: ("buildConfigURI", False),
    19: ("buildConfigDigest", False),
    20: ("buildTrigger", False),
    21: ("runInvocationURI", False),
    22: ("sourceRepositoryVisibilityAtSigning", False),
}


def _der_utf8(value: bytes) -> str | None:
    """The text of a DER UTF8String (tag 0x0c), or None when ``value`` is not one."""
    if len(value) < 2 or value[0] != 0x0C:
        return None
    length, offset = value[1], 2
    if length & 0x80:
        count = length & 0x7F
        if count == 0 or count > 4 or len(value) < 2 + count:
            return None
        length, offset = int.from_bytes(value[2 : 2 + count], "big"), 2 + count
    if offset + length != len(value):
        return None
    try:
        return value[offset:].decode("utf-8")
    except UnicodeDecodeError:
        return None


def _san(cert: x509.Certificate) -> str:
    try:
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return ""
    for kind in (x509.RFC822Name, x509.UniformResourceIdentifier, x509.OtherName):
        values = names.get_values_for_type(kind)
        if values:
            value = values[0]
            return value if isinstance(value, str) else repr(value)
    return ""


def certificate_identity(cert: x509.Certificate) -> SignerIdentity:
    """SAN, issuer and named Fulcio claims of a signing certificate (informational: nothing is verified)."""
    claims: dict[str, str] = {}
    legacy: dict[str, str] = {}
    for ext in cert.extensions:
        dotted = ext.oid.dotted_string
        if not dotted.startswith(_PREFIX) or not isinstance(ext.value, x509.UnrecognizedExtension):
            continue
        try:
            number = int(dotted[len(_PREFIX) :])
        except ValueError:
            continue
        known = _EXTENSIONS.get(number)
        if known is None:
            continue
        name, raw = known
        data = ext.value.value
        text = data.decode("utf-8", "replace") if raw else _der_utf8(data)
        if text is None:
            continue
        (legacy if raw else claims)[name] = text
    merged = {**legacy, **claims}
    issuer = merged.pop("issuer", None)
    return SignerIdentity(_san(cert), issuer, merged)
