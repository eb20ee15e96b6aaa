"""The whole loopback Sigstore deployment, wired together and described for clients.

A :class:`SigstoreStack` is what a test fixture or the demo starts: an OIDC
issuer, Fulcio (with its CT log key) and Rekor on ephemeral loopback ports,
plus the ``ClientTrustConfig`` that points sigstore-python at them. The
config is loaded back through sigstore-python's own parsers when the stack
starts, so a format mistake fails there rather than as a confusing
verification error later.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import tempfile
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Unpack

from cryptography.hazmat.primitives import serialization

from chaingate_testing.sigstore.fulcio import CTLog, FulcioCA
from chaingate_testing.sigstore.oidc import MintOptions, OIDCIssuer
from chaingate_testing.sigstore.rekor import RekorLog

if TYPE_CHECKING:
    from sigstore.models import ClientTrustConfig
    from sigstore.sign import SigningContext
    from sigstore.verify import Verifier

CLIENT_TRUST_CONFIG_MEDIA_TYPE = "application/vnd.dev.sigstore.clienttrustconfig.v0.1+json"
TRUSTED_ROOT_MEDIA_TYPE = "application/vnd.dev.sigstore.trustedroot+json;version=0.1"
SIGNING_CONFIG_MEDIA_TYPE = "application/vnd.dev.sigstore.signingconfig.v0.2+json"


def _rfc3339(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


class SigstoreStack:
    """OIDC issuer + Fulcio + Rekor on 127.0.0.1, and a trust config naming them.

    Every stack has its own keys, so a bundle from one stack does not verify
    against another's trust config. ``directory`` receives
    ``trust_config.json``; without one a temporary directory is created and
    removed again by :meth:`stop`.

    The services are exposed (``oidc``, ``fulcio``, ``rekor``, ``ct_log``) for
    fault tests: set ``stack.rekor.down = True`` (or use
    ``with stack.rekor.outage():``) and the service answers 503.
    """

    def __init__(self, directory: Path | None = None, *, operator: str = "chaingate.test") -> None:
        self.operator = operator
        self.ct_log = CTLog()
        self.oidc = OIDCIssuer()
        self.fulcio = FulcioCA(ct_log=self.ct_log, trusted_issuers=[self.oidc.issuer_url])
        self.rekor = RekorLog()
        self._owns_directory = directory is None
        self.directory = (
            Path(tempfile.mkdtemp(prefix="chaingate-sigstore-")) if directory is None else directory
        )
        self.trust_config_path = self.directory / "trust_config.json"
        self._running = False

    @property
    def issuer_url(self) -> str:
        return self.oidc.issuer_url

    @property
    def fulcio_url(self) -> str:
        return self.fulcio.url

    @property
    def rekor_url(self) -> str:
        return self.rekor.url

    def start(self) -> SigstoreStack:
        """Serve, write the trust config, and prove sigstore-python accepts it."""
        if self._running:
            return self
        self.directory.mkdir(parents=True, exist_ok=True)
        for service in (self.oidc, self.fulcio, self.rekor):
            service.start()
        self._running = True
        try:
            self._write_trust_config()
            self.client_trust_config()
            self.signing_context()
            self.verifier()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        for service in (self.rekor, self.fulcio, self.oidc):
            service.stop()
        self._running = False
        if self._owns_directory:
            shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> SigstoreStack:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def mint_token(self, subject: str, **options: Unpack[MintOptions]) -> str:
        """An identity token from this stack's issuer; see :meth:`OIDCIssuer.mint`."""
        return self.oidc.mint(subject, **options)

    def trust_config(self) -> dict[str, Any]:
        """The ClientTrustConfig document: trusted root plus signing config."""
        valid_for = {"start": _rfc3339(self.fulcio.valid_from)}

        def service(url: str) -> dict[str, object]:
            return {"url": url, "majorApiVersion": 1, "validFor": valid_for, "operator": self.operator}

        def log_instance(base_url: str, public_key_der: bytes, log_id: bytes) -> dict[str, object]:
            return {
                "baseUrl": base_url,
                "hashAlgorithm": "SHA2_256",
                "publicKey": {
                    "rawBytes": _b64(public_key_der),
                    "keyDetails": "PKIX_ECDSA_P256_SHA_256",
                    "validFor": valid_for,
                },
                "logId": {"keyId": _b64(log_id)},
                "operator": self.operator,
            }

        chain = [
            {"rawBytes": _b64(cert.public_bytes(serialization.Encoding.DER))} for cert in self.fulcio.chain
        ]
        return {
            "mediaType": CLIENT_TRUST_CONFIG_MEDIA_TYPE,
            "trustedRoot": {
                "mediaType": TRUSTED_ROOT_MEDIA_TYPE,
                "tlogs": [log_instance(self.rekor_url, self.rekor.public_key_der(), self.rekor.log_id)],
                "certificateAuthorities": [
                    {
                        "subject": {"organization": "chaingate.test", "commonName": "chaingate-local-root"},
                        "uri": self.fulcio_url,
                        "certChain": {"certificates": chain},
                        "validFor": valid_for,
                        "operator": self.operator,
                    }
                ],
                # The CT log has no HTTP API of its own (Fulcio is its only
                # client); the URL only labels it, as clients never call it.
                "ctlogs": [
                    log_instance(f"{self.fulcio_url}/ct", self.ct_log.public_key_der(), self.ct_log.log_id)
                ],
                "timestampAuthorities": [],
            },
            "signingConfig": {
                "mediaType": SIGNING_CONFIG_MEDIA_TYPE,
                "caUrls": [service(self.fulcio_url)],
                "oidcUrls": [service(self.issuer_url)],
                "rekorTlogUrls": [service(self.rekor_url)],
                "tsaUrls": [],
                "rekorTlogConfig": {"selector": "ANY"},
                "tsaConfig": {"selector": "ANY"},
            },
        }

    def _write_trust_config(self) -> None:
        # Written atomically: the demo may poll for the file while we write it.
        tmp = self.trust_config_path.with_name(f".{self.trust_config_path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(self.trust_config(), indent=2) + "\n", encoding="utf-8")
        tmp.replace(self.trust_config_path)

    def client_trust_config(self) -> ClientTrustConfig:
        """The written config, parsed by sigstore-python itself."""
        from sigstore.models import ClientTrustConfig

        return ClientTrustConfig.from_json(self.trust_config_path.read_text(encoding="utf-8"))

    def signing_context(self) -> SigningContext:
        from sigstore.sign import SigningContext

        return SigningContext.from_trust_config(self.client_trust_config())

    def verifier(self) -> Verifier:
        from sigstore.verify import Verifier

        return Verifier(trusted_root=self.client_trust_config().trusted_root)
