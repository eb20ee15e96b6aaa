"""``chaingate inspect``: an image, its platforms and the tree of what is attached (cf. ``cosign tree``).

Inspection is a read-only, informational view: predicate types shown here come
from manifest annotations and are labelled as such. The gate never uses them;
it reads the predicate type from the signed statement.

For a Sigstore bundle attachment, inspect also shows what the bundle says —
the signed statement's predicate type, the signer identity from the Fulcio
certificate, the Rekor log index and integrated time — read with
sigstore-python's parser but not verified (``"verified": false``): it helps
a human see what is there, it is not evidence.

It sits above ``oci`` (the bottom layer, which knows nothing of Sigstore)
because it reads bundles with ``chaingate.signing``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from chaingate.oci import media
from chaingate.oci.errors import OCIError
from chaingate.oci.interface import ImageStore, Manifest, RejectedReferrer

if TYPE_CHECKING:
    from chaingate.signing.bundle import BundleSummary

MAX_DEPTH = 3
_BUNDLE_MEDIA_PREFIX = "application/vnd.dev.sigstore.bundle"


@dataclass(frozen=True)
class AttachmentNode:
    digest: str
    media_type: str
    artifact_type: str | None
    #: Bytes of the manifest and every blob it references.
    size: int
    source: str
    #: From the ``dev.sigstore.bundle.predicateType`` annotation: informational only.
    predicate_type: str | None
    children: tuple[AttachmentNode, ...]
    #: What a Sigstore bundle attachment says (unverified), or why it could not be read.
    bundle: BundleSummary | None = None
    bundle_error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "digest": self.digest,
            "mediaType": self.media_type,
            "artifactType": self.artifact_type,
            "size": self.size,
            "source": self.source,
            "predicateTypeAnnotation": self.predicate_type,
            "attachments": [c.to_dict() for c in self.children],
        }
        if self.bundle is not None:
            out["bundle"] = self.bundle.to_dict()
        elif self.bundle_error is not None:
            out["bundle"] = {"verified": False, "error": self.bundle_error}
        return out


@dataclass(frozen=True)
class ManifestNode:
    digest: str
    media_type: str
    size: int
    platform: str | None
    attachments: tuple[AttachmentNode, ...]

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"digest": self.digest, "mediaType": self.media_type, "size": self.size}
        if self.platform:
            out["platform"] = self.platform
        out["attachments"] = [a.to_dict() for a in self.attachments]
        return out


@dataclass(frozen=True)
class Inspection:
    reference: str
    image: ManifestNode
    platforms: tuple[ManifestNode, ...]
    rejected: tuple[RejectedReferrer, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "reference": self.reference,
            **self.image.to_dict(),
            "platforms": [p.to_dict() for p in self.platforms],
            "rejected": [{"digest": r.digest, "source": r.source, "reason": r.reason} for r in self.rejected],
        }


def _total_size(manifest: Manifest) -> int:
    if manifest.is_index:
        return manifest.descriptor.size
    return manifest.descriptor.size + sum(d.size for d in manifest.children())


def _read_bundle(store: ImageStore, manifest: Manifest) -> tuple[BundleSummary | None, str | None]:
    """The summary of a bundle attachment's layer, or the reason it has none; never raises for bad content."""
    from chaingate.signing.bundle import BundleReadError, read_bundle_layer, summarize

    layers = [d for d in manifest.layers if d.media_type.startswith(_BUNDLE_MEDIA_PREFIX)]
    if not layers:
        return None, "no Sigstore bundle layer"
    try:
        return summarize(read_bundle_layer(store, layers[0])), None
    except (OCIError, BundleReadError) as e:
        return None, str(e)


def _attachments(
    store: ImageStore, subject: str, depth: int, rejected: list[RejectedReferrer]
) -> tuple[AttachmentNode, ...]:
    listing = store.referrers(subject)
    rejected.extend(listing.rejected)
    nodes = []
    for ref in listing.referrers:
        m = ref.manifest
        children = _attachments(store, m.digest, depth + 1, rejected) if depth < MAX_DEPTH else ()
        bundle, bundle_error = (
            _read_bundle(store, m)
            if (m.artifact_type or "").startswith(_BUNDLE_MEDIA_PREFIX)
            else (None, None)
        )
        nodes.append(
            AttachmentNode(
                m.digest,
                m.media_type,
                m.artifact_type,
                _total_size(m),
                ref.source,
                m.annotations.get(media.ANNOTATION_PREDICATE_TYPE),
                children,
                bundle,
                bundle_error,
            )
        )
    for suffix, legacy in store.legacy_attachments(subject):
        nodes.append(
            AttachmentNode(
                legacy.digest,
                legacy.media_type,
                legacy.artifact_type,
                _total_size(legacy),
                f"legacy-tag:.{suffix}",
                None,
                (),
            )
        )
    return tuple(nodes)


def inspect_image(store: ImageStore, target: str, reference: str) -> Inspection:
    root = store.get_manifest(store.resolve(target).digest)
    rejected: list[RejectedReferrer] = []
    image = ManifestNode(
        root.digest,
        root.media_type,
        root.descriptor.size,
        None,
        _attachments(store, root.digest, 1, rejected),
    )
    platforms = []
    if root.is_index:
        for child in root.manifests:
            platforms.append(
                ManifestNode(
                    child.digest,
                    child.media_type,
                    child.size,
                    str(child.platform) if child.platform else None,
                    _attachments(store, child.digest, 1, rejected),
                )
            )
    return Inspection(reference, image, tuple(platforms), tuple(rejected))


def _human(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"


def _render_attachments(nodes: tuple[AttachmentNode, ...], prefix: str, lines: list[str]) -> None:
    for i, node in enumerate(nodes):
        last = i == len(nodes) - 1
        kind = node.artifact_type or node.media_type
        predicate = f"  predicate: {node.predicate_type} (annotation)" if node.predicate_type else ""
        lines.append(
            f"{prefix}{'└── ' if last else '├── '}{node.digest}  {kind}  {_human(node.size)}  [{node.source}]{predicate}"
        )
        inner = prefix + ("    " if last else "│   ")
        if node.bundle is not None:
            lines.extend(f"{inner}    {line}" for line in _bundle_lines(node.bundle))
        elif node.bundle_error is not None:
            lines.append(f"{inner}    bundle unreadable: {node.bundle_error}")
        _render_attachments(node.children, inner, lines)


def _bundle_lines(bundle: BundleSummary) -> list[str]:
    lines = [f"statement: {bundle.predicate_type or 'none'} (signed payload; not verified)"]
    if bundle.identity is not None:
        lines.append(f"signer:    {bundle.identity.san} (issuer {bundle.identity.issuer})")
        claims = bundle.identity.claims
        workflow = claims.get("buildSignerURI") or claims.get("githubWorkflowRepository")
        if workflow:
            lines.append(
                f"workflow:  {workflow} @ {claims.get('sourceRepositoryDigest') or claims.get('githubWorkflowSha', '')}"
            )
    if bundle.tlog is not None:
        lines.append(
            f"rekor:     log index {bundle.tlog.log_index}, integrated {bundle.tlog.to_dict()['integratedTimeUTC']}"
        )
    return lines


def render_text(inspection: Inspection) -> str:
    img = inspection.image
    lines = [
        f"{inspection.reference}",
        f"  digest:     {img.digest}",
        f"  media type: {img.media_type}",
        f"  size:       {img.size} bytes",
    ]
    lines.append(f"  attachments ({len(img.attachments)}):" if img.attachments else "  attachments: none")
    _render_attachments(img.attachments, "    ", lines)
    if inspection.platforms:
        lines.append(f"  platforms ({len(inspection.platforms)}):")
        for p in inspection.platforms:
            lines.append(f"    {p.platform or 'unknown'}  {p.digest}  {p.media_type}")
            _render_attachments(p.attachments, "      ", lines)
    for r in inspection.rejected:
        lines.append(f"  ignored referrer {r.digest} [{r.source}]: {r.reason}")
    return "\n".join(lines)
