"""The Sigstore trust configuration: which Fulcio, Rekor and roots to sign with and trust.

A ``--trust-config`` file is a ``ClientTrustConfig`` (trusted root plus
signing config) parsed by sigstore-python's own model, so chaingate accepts
exactly what sigstore-python and cosign accept. Without one, the public-good
instance's config is fetched through sigstore's TUF client.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from chaingate.signing.interface import TrustConfigError
from chaingate.text import one_line
from chaingate.userfiles import read_user_file

if TYPE_CHECKING:
    from sigstore.models import ClientTrustConfig

#: Trust configs are a few tens of kilobytes; a file far larger is not one.
MAX_TRUST_CONFIG_BYTES = 16 * 1024 * 1024


def _error_line(error: object) -> str:
    """A parser error as one short, neutralised line; pydantic's multi-line reports become ``field: message`` pairs."""
    errors = getattr(error, "errors", None)
    found: list[Any] = []
    if callable(errors):
        try:
            found = list(errors())
        except Exception:  # a foreign errors() method: fall back to the text
            found = []
    if found:
        return one_line(
            "; ".join(
                f"{'.'.join(str(p) for p in item.get('loc', ()))}: {item.get('msg', '')}"
                for item in found[:3]
            ),
            300,
        )
    return one_line(error, 300)


def load_trust_config(path: Path | None) -> ClientTrustConfig:
    """The config in ``path`` or, without one, the public-good instance's (needs network for TUF)."""
    from sigstore.models import ClientTrustConfig

    if path is None:
        try:
            return ClientTrustConfig.production()
        except Exception as e:  # TUF failures come as many types; all mean "no trust root"
            raise TrustConfigError(
                f"could not load the public-good Sigstore trust root over TUF ({_error_line(e) or type(e).__name__})",
                hint="pass --trust-config FILE with a ClientTrustConfig JSON",
            ) from None
    raw = read_user_file(path, MAX_TRUST_CONFIG_BYTES, f"--trust-config {path}", TrustConfigError)
    try:
        text = raw.decode("utf-8")
        return ClientTrustConfig.from_json(text)
    except Exception as e:  # the protobuf-JSON parser raises ValueError, KeyError, TypeError, ...
        raise TrustConfigError(
            f"--trust-config {path}: not a Sigstore ClientTrustConfig ({_error_line(e) or type(e).__name__})"
        ) from None
