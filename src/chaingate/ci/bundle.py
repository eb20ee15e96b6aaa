"""The Sigstore bundle an ``attest``/``sign`` step attached, saved as a file (the actions' ``bundle-path``).

actions/attest hands later steps the bundle as a file (``bundle-path``), so
they can upload it, store it in a release or check it with ``cosign
verify-blob-attestation --bundle``. chaingate's result names the bundle only
by digest (``bundleDigest``, inside the referrer manifest ``referrer``), so the
step reads it back from where it was just attached, with the same registry
options the step ran with, and checks its digest before writing it: the file
is exactly the blob that the gate will later verify, never a copy made before
the upload. It is written as ``<bundle digest hex>.sigstore.json`` (content
addressed, so two attestations in one job never overwrite each other).
"""

from __future__ import annotations

import argparse
import hashlib
from collections.abc import Sequence
from pathlib import Path

from chaingate.ci.report import MAX_RESULT_BYTES, ReportError
from chaingate.errors import ChaingateError
from chaingate.userfiles import write_atomic

#: chaingate's per-request read timeout for the read-back (the default of every command but verify/deploy).
READ_TIMEOUT = 60.0


def _registry_flags(chaingate_argv: Sequence[str]) -> tuple[frozenset[str], float]:
    """``--insecure-registry`` hosts and ``--timeout`` as the step's chaingate command line gave them."""
    parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    parser.add_argument("--insecure-registry", action="append", default=[])
    parser.add_argument("--timeout", type=float, default=READ_TIMEOUT)
    known, _ = parser.parse_known_args(list(chaingate_argv))
    return frozenset(known.insecure_registry), float(known.timeout)


def _field(result: object, name: str, where: Path) -> str:
    value = result.get(name) if isinstance(result, dict) else None
    if not isinstance(value, str) or not value:
        raise ReportError(f"{where}: the result names no {name}")
    return value


def save_bundle(result: Path, directory: Path, chaingate_argv: Sequence[str]) -> Path:
    """Read the bundle the result names back from the image's store, check it, write it under ``directory``."""
    from chaingate import safejson
    from chaingate.oci.interface import Descriptor
    from chaingate.oci.registries import Registries, RegistryOptions
    from chaingate.oci.stores import open_image

    try:
        document = safejson.loads(result.read_bytes()[: MAX_RESULT_BYTES + 1])
    except (OSError, ValueError) as e:
        raise ReportError(f"{result}: cannot read the attest result ({e})") from None
    image = _field(document, "image", result)
    referrer = _field(document, "referrer", result)
    bundle_digest = _field(document, "bundleDigest", result)
    if not bundle_digest.startswith("sha256:"):
        raise ReportError(f"{result}: bundleDigest {bundle_digest!r} is not a sha256 digest")
    hosts, timeout = _registry_flags(chaingate_argv)
    registries = Registries(
        RegistryOptions(insecure_registries=hosts, read_timeout=timeout, connect_timeout=min(timeout, 10.0))
    )
    try:
        opened = open_image(image, registries)
        with opened.store:
            manifest = opened.store.get_manifest(referrer)
            layer: Descriptor | None = next((d for d in manifest.layers if d.digest == bundle_digest), None)
            if layer is None:
                raise ReportError(f"{image}: referrer {referrer} does not carry the bundle {bundle_digest}")
            if layer.size > MAX_RESULT_BYTES:
                raise ReportError(f"{image}: bundle {bundle_digest} is larger than {MAX_RESULT_BYTES} bytes")
            with opened.store.open_blob(layer) as stream:
                data = stream.read(layer.size + 1)
                stream.read()  # to the end: the verified reader checks size and digest there
    except ChaingateError as e:
        raise ReportError(f"{image}: cannot read back the bundle {bundle_digest}: {e.message}") from None
    finally:
        registries.close()
    if "sha256:" + hashlib.sha256(data).hexdigest() != bundle_digest:
        raise ReportError(f"{image}: the bundle read back does not match {bundle_digest}")
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{bundle_digest.removeprefix('sha256:')}.sigstore.json"
    write_atomic(path, data)
    return path
