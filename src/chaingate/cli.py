"""Command-line interface: argument parsing and output only.

The core returns values and raises :class:`ChaingateError`; this module maps
them to text, JSON and exit codes in one place. Heavy modules (requests,
cryptography, sigstore) are imported inside the command functions so that
``chaingate --version`` and ``--help`` start fast.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chaingate import __version__
from chaingate.errors import ChaingateError
from chaingate.text import lines, one_line

if TYPE_CHECKING:
    from chaingate.oci.registries import Registries

log = logging.getLogger("chaingate")


class ProgressPrinter:
    """Progress for humans: a redrawn bar on a terminal, sparse plain lines in CI logs."""

    def __init__(self, stream: Any = None, *, interactive: bool | None = None) -> None:
        self.stream = stream or sys.stderr
        if interactive is None:
            interactive = bool(getattr(self.stream, "isatty", lambda: False)()) and not os.environ.get("CI")
        self.interactive = interactive
        self._last: dict[str, int] = {}
        self._drawn = 0.0

    def __call__(self, what: str, done: int, total: int | None) -> None:
        if self.interactive:
            now = time.monotonic()
            if total and done < total and now - self._drawn < 0.1:
                return
            self._drawn = now
            if total:
                width = 30
                filled = int(width * done / total) if total else width
                bar = "#" * filled + "-" * (width - filled)
                self.stream.write(f"\r{what} [{bar}] {done * 100 // total:3d}%")
            else:
                self.stream.write(f"\r{what} {done} bytes")
            if total and done >= total:
                self.stream.write("\n")
            self.stream.flush()
            return
        # Plain: one line at each quarter, so CI logs stay short.
        quarter = 4 * done // total if total else 0
        if self._last.get(what) == quarter:
            return
        self._last[what] = quarter
        if total and done >= total:
            self.stream.write(f"{what}: done ({total} bytes)\n")
        elif total:
            self.stream.write(f"{what}: {quarter * 25}%\n")
        self.stream.flush()


class _SafeFormatter(logging.Formatter):
    """Log records quote registries and servers: each line is neutralised (see ``chaingate.text``)."""

    def format(self, record: logging.LogRecord) -> str:
        return lines(super().format(record), limit=2000, max_lines=200, continuation=2)


def _registries(args: argparse.Namespace) -> Registries:
    from chaingate.oci.registries import Deadline, Registries, RegistryOptions

    # verify's --timeout is one deadline for the whole verify (DESIGN.md, Bounds); elsewhere it is per request.
    verify = args.command == "verify"
    timeout = args.timeout if args.timeout is not None else 300.0 if verify else 60.0
    whole = Deadline.after(timeout, name="--timeout") if verify else None
    options = RegistryOptions(
        insecure_registries=frozenset(args.insecure_registry or ()),
        read_timeout=min(timeout, 60.0) if verify else timeout,
        connect_timeout=min(timeout, 10.0),
        deadline=whole,
    )
    return Registries(options)


def _platform(args: argparse.Namespace) -> Any:
    from chaingate.oci.interface import Platform

    return Platform.parse(args.platform) if args.platform else None


def cmd_inspect(args: argparse.Namespace) -> int:
    from chaingate.oci.tree import inspect_image, render_text

    registries = _registries(args)
    try:
        opened = _target_image(args, registries)
        with opened.store as store:
            assert opened.target is not None
            result = inspect_image(store, opened.target, str(opened.reference))
    finally:
        registries.close()
    if args.format == "json":
        print(json.dumps(result.to_dict(), indent=2))
    else:
        print(render_text(result))
    return 0


def cmd_copy(args: argparse.Namespace) -> int:
    from chaingate.oci.archive import ArchiveStore
    from chaingate.oci.copy import copy_image
    from chaingate.oci.interface import OCIError
    from chaingate.oci.reference import LayoutReference, Reference, parse_image_reference
    from chaingate.oci.stores import open_image

    src_ref = parse_image_reference(args.src)
    dst_ref = parse_image_reference(args.dst)
    registries = _registries(args)
    progress = ProgressPrinter()
    try:
        src = open_image(src_ref, registries)
        repo_tag = src_ref.name if isinstance(src_ref, Reference) else None
        tag: str | None = None
        if isinstance(dst_ref, Reference):
            tag = dst_ref.tag if dst_ref.digest is None else None
        elif isinstance(dst_ref, LayoutReference):
            tag = (
                dst_ref.tag
                or (src_ref.tag if isinstance(src_ref, Reference | LayoutReference) else None)
                or "latest"
            )
        dst = open_image(dst_ref, registries, write=True, repo_tag=repo_tag)
        assert src.target is not None
        try:
            result = copy_image(
                src.store,
                src.target,
                dst.store,
                tag=tag,
                platform=_platform(args),
                referrers=not args.no_referrers,
                progress=progress,
            )
            digest_pin = getattr(dst_ref, "digest", None)
            if digest_pin and digest_pin != result.digest:
                raise OCIError(
                    f"{args.dst}: destination pins {digest_pin} but the copied image is {result.digest}"
                )
        except BaseException:
            if isinstance(dst.store, ArchiveStore):
                dst.store.abort()
            raise
        finally:
            src.store.close()
        dst.store.close()
    finally:
        registries.close()
    if args.format == "json":
        print(
            json.dumps(
                {
                    "digest": result.digest,
                    "mediaType": result.media_type,
                    "manifests": result.manifests,
                    "blobsCopied": result.blobs_copied,
                    "blobsMounted": result.blobs_mounted,
                    "blobsPresent": result.blobs_present,
                    "referrers": list(result.referrers),
                    "legacyTags": list(result.legacy_tags),
                    "ignored": [{"digest": r.digest, "reason": r.reason} for r in result.rejected],
                },
                indent=2,
            )
        )
    else:
        print(
            f"copied {args.src} -> {args.dst}\n  digest: {result.digest}\n"
            f"  manifests: {result.manifests}, blobs copied: {result.blobs_copied}, mounted: {result.blobs_mounted}, "
            f"already present: {result.blobs_present}\n  referrers: {len(result.referrers)}, "
            f"legacy tags: {len(result.legacy_tags)}"
        )
        for r in result.rejected:
            print(f"  ignored referrer {r.digest}: {one_line(r.reason, 1000)}")
    return 0


def _target_image(args: argparse.Namespace, registries: Registries) -> Any:
    """The image to sign or describe, with ``--platform`` narrowed to that platform's manifest digest."""
    import dataclasses

    from chaingate.oci.copy import select_platform
    from chaingate.oci.stores import open_image

    platform = _platform(args)  # a malformed --platform is reported before anything is opened
    opened = open_image(args.image, registries)
    if platform is not None and opened.target is not None:
        root = opened.store.get_manifest(opened.store.resolve(opened.target).digest)
        if root.is_index:
            opened = dataclasses.replace(opened, target=select_platform(opened.store, root, platform).digest)
    return opened


def cmd_sbom(args: argparse.Namespace) -> int:
    from chaingate.oci.reference import Reference
    from chaingate.oci.stores import open_image
    from chaingate.sbom.image import image_sbom

    platform = _platform(args)
    registries = _registries(args)
    try:
        opened = open_image(args.image, registries)
        with opened.store as store:
            assert opened.target is not None
            ref = opened.reference
            name = ref.name if isinstance(ref, Reference) else str(ref)
            result = image_sbom(store, opened.target, name, platform=platform, progress=ProgressPrinter())
    finally:
        registries.close()
    _write_output(args.output, result.document)
    if args.output:
        print(f"wrote CycloneDX 1.6 SBOM of {args.image} ({result.digest}) to {args.output}", file=sys.stderr)
    return 0


def _write_output(path: str | None, data: bytes) -> None:
    """Write a result to the file named by ``-o`` (see :func:`_write_file`), or to stdout."""
    if not path:
        sys.stdout.buffer.write(data if data.endswith(b"\n") else data + b"\n")
        sys.stdout.flush()
        return
    _write_file(path, data)


def _write_file(path: str, data: bytes) -> None:
    """Replace ``path`` atomically: a reader never sees half a file, and a failed write leaves the old one."""
    out = Path(path)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    try:
        tmp.write_bytes(data)
        tmp.replace(out)
    finally:
        tmp.unlink(missing_ok=True)


def cmd_provenance(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from chaingate.ci.flags import BuildOverrides, apply
    from chaingate.ci.interface import detect
    from chaingate.provenance.image import image_provenance, parse_base_image
    from chaingate.provenance.slsa import check_context

    context = apply(
        detect(os.environ, args.ci),
        BuildOverrides(
            build_type=args.build_type,
            builder_id=args.builder_id,
            invocation_id=args.invocation_id,
            source_uri=args.source_uri,
            source_ref=args.source_ref,
            source_commit=args.source_commit,
            started_on=args.started_on,
            finished_on=args.finished_on,
            external_parameters=args.external_parameter or (),
            internal_parameters=args.internal_parameter or (),
        ),
    )
    check_context(context)
    bases = [parse_base_image(text, "--base-image", "flag") for text in args.base_image or ()]
    registries = _registries(args)
    try:
        opened = _target_image(args, registries)
        with opened.store as store:
            if opened.target is None:
                raise ChaingateError(f"{args.image}: no image to describe (name a tag or digest)")
            result = image_provenance(
                store,
                opened.target,
                opened.reference,
                context,
                base_images=bases,
                generated_at=datetime.now(UTC).replace(microsecond=0),
            )
    finally:
        registries.close()
    text = json.dumps(result.statement, indent=2) + "\n"
    if args.output:
        _write_file(args.output, text.encode())
        print(f"wrote {args.output}: SLSA v1 provenance for {args.image} ({result.digest}, {context.system})")
    else:
        sys.stdout.write(text)
    return 0


def _attest(args: argparse.Namespace, loaded: Any) -> int:
    """Shared by ``sign`` and ``attest``: offline checks first, then resolve, sign, attach."""
    from datetime import UTC, datetime

    from chaingate.signing.attest import attest_image, prepare_signer
    from chaingate.signing.tokens import resolve_token
    from chaingate.signing.trust import load_trust_config

    token = resolve_token(token=args.identity_token, token_file=args.identity_token_file, env=os.environ)
    signer = prepare_signer(token, load_trust_config(args.trust_config))
    registries = _registries(args)
    try:
        opened = _target_image(args, registries)
        with opened.store:
            result = attest_image(opened, loaded, signer, now=datetime.now(UTC))
    finally:
        registries.close()
    if args.format == "json":
        print(json.dumps(result.to_dict(), indent=2))
        return 0
    identity = result.identity
    print(
        f"attached {result.predicate_type} to {result.image}\n"
        f"  digest:   {result.subject_digest}\n"
        f"  referrer: {result.referrer.digest} ({result.referrer.artifact_type})\n"
        f"  rekor:    log index {result.tlog.log_index} "
        f"(integrated {result.tlog.to_dict()['integratedTimeUTC']})\n"
        f"  signer:   {identity.san} (issuer {identity.issuer})"
    )
    if result.sbom_referrer is not None:
        print(
            f"  sbom:     {result.sbom_referrer.digest} ({result.sbom_referrer.blob_size} bytes, "
            "attached by reference)"
        )
    return 0


def cmd_sign(args: argparse.Namespace) -> int:
    from chaingate.signing.attest import sign_predicate

    return _attest(args, sign_predicate())


def cmd_attest(args: argparse.Namespace) -> int:
    from chaingate.signing.predicates import load_predicate, predicate_type_for

    return _attest(args, load_predicate(Path(args.predicate), predicate_type_for(args.type)))


def _vsa_signer(args: argparse.Namespace) -> Any:
    """The signer for the decision's VSA, or None when no identity is at hand (the record stays unsigned).

    An identity is at hand when a token flag is given or the environment
    offers one ($SIGSTORE_ID_TOKEN, GitHub Actions' token service). It is
    checked offline before the image is verified, so a bad token fails as a
    usage error before anything is read, as for ``attest``.
    """
    if args.no_sign:
        return None
    from chaingate.signing.tokens import ENV_GITHUB_TOKEN, ENV_GITHUB_URL, ENV_TOKEN, resolve_token

    ambient = bool(os.environ.get(ENV_TOKEN, "").strip()) or bool(
        os.environ.get(ENV_GITHUB_URL) and os.environ.get(ENV_GITHUB_TOKEN)
    )
    if args.identity_token is None and args.identity_token_file is None and not ambient:
        return None
    from chaingate.signing.attest import prepare_signer
    from chaingate.signing.trust import load_trust_config

    token = resolve_token(token=args.identity_token, token_file=args.identity_token_file, env=os.environ)
    return prepare_signer(token, load_trust_config(args.trust_config))


def _attach_vsa(
    args: argparse.Namespace, decision: Any, signer: Any, registries: Registries
) -> dict[str, Any]:
    """Sign the VSA and attach it to the verified digest; a failure is reported, never a changed verdict."""
    if signer is None:
        return {
            "signed": False,
            "reason": "no signing identity (flags, $SIGSTORE_ID_TOKEN or GitHub Actions)",
        }
    if not decision.digest:
        return {"signed": False, "reason": "the image was not resolved; there is no digest to attest about"}
    import dataclasses
    from datetime import UTC, datetime

    from chaingate.oci.reference import ArchiveReference
    from chaingate.oci.stores import open_image
    from chaingate.policy.record import VSA_PREDICATE_TYPE
    from chaingate.signing.attest import attest_image
    from chaingate.signing.predicates import LoadedPredicate

    try:
        opened = dataclasses.replace(open_image(args.image, registries), target=decision.digest)
        if isinstance(opened.reference, ArchiveReference):
            opened.store.close()
            return {"signed": False, "reason": "a docker archive cannot carry attachments"}
        loaded = LoadedPredicate(
            VSA_PREDICATE_TYPE, decision.vsa_statement()["predicate"], "chaingate verify"
        )
        with opened.store:
            result = attest_image(opened, loaded, signer, now=datetime.now(UTC))
    except ChaingateError as e:
        log.warning("the decision was not attached: %s", e.message)
        return {"signed": False, "reason": f"signing or attaching the VSA failed: {e.message}"}
    out: dict[str, Any] = {"signed": True, **result.to_dict()}
    return out


def cmd_verify(args: argparse.Namespace) -> int:
    from chaingate.errors import EXIT_DENIED
    from chaingate.policy import load_policy
    from chaingate.verify import verify_image
    from chaingate.verify.render import render_text

    policy = load_policy(Path(args.policy))
    platform = _platform(args)
    signer = _vsa_signer(args)
    registries = _registries(args)
    try:
        decision = verify_image(
            args.image,
            policy,
            registries=registries,
            trust_config=args.trust_config,
            project=args.project,
            platform=platform,
        )
        attachment = _attach_vsa(args, decision, signer, registries)
    finally:
        registries.close()
    document = decision.record()
    document["vsa"] = decision.vsa_statement() if decision.digest else None
    document["vsaAttestation"] = attachment
    if args.output:
        _write_file(args.output, (json.dumps(document, indent=2) + "\n").encode())
    if args.format == "json":
        print(json.dumps(document, indent=2))
    else:
        print(render_text(decision))
        if attachment["signed"]:
            print(f"\ndecision signed and attached: VSA referrer {attachment['referrer']}")
        else:
            print(f"\ndecision record not signed: {attachment['reason']}")
        if args.output:
            print(f"wrote {args.output}")
    return 0 if decision.allowed else EXIT_DENIED


def _ibm_auth(args: argparse.Namespace) -> Any:
    """Explicit authenticator flags, or None for the IBM SDK's external configuration (CODE_ENGINE_*…)."""
    from chaingate.deploy.ibmcloud import AuthOptions

    return AuthOptions(
        method=args.auth,
        apikey_file=args.apikey_file,
        profile_id=args.profile_id,
        profile_name=args.profile_name,
        cr_token_file=args.cr_token_file,
        iam_url=args.iam_url,
        account_id=args.account_id,
    )


def _workload(args: argparse.Namespace) -> Any:
    from chaingate.deploy.interface import Target

    if not args.app and not args.job:
        raise ChaingateError(f"{args.command}: name the workload with --app NAME or --job NAME")
    return Target(args.project, "app" if args.app else "job", args.app or args.job)


def _iam_audit(args: argparse.Namespace, ce: Any, target: Any) -> Any:
    from chaingate.deploy.iam import IamClients, audit_iam

    iam = IamClients.connect(_ibm_auth(args), request_timeout=args.request_timeout)
    return audit_iam(
        ce,
        iam,
        args.project,
        args.deployer,
        workload=target,
        profile_ids=tuple(getattr(args, "trusted_profile", None) or ()),
        account_id=args.account_id,
    )


def cmd_deploy(args: argparse.Namespace) -> int:
    import dataclasses
    import math

    from chaingate.deploy.bindings import load_bindings
    from chaingate.deploy.codeengine import CodeEngine, DeployOptions
    from chaingate.deploy.run import evaluate, gated_deploy, summary
    from chaingate.oci.registries import Deadline, Registries, RegistryOptions

    if args.submit and not args.job:
        raise ChaingateError("--submit: only a job is run (an app serves once deployed)")
    target = _workload(args)
    options = DeployOptions(
        timeout=args.timeout,
        image_secret=args.image_secret,
        bindings=load_bindings(Path(args.bindings)) if args.bindings else None,
        submit=args.submit,
    )
    ce = CodeEngine.connect(region=args.region, auth=_ibm_auth(args), request_timeout=args.request_timeout)
    deadline = Deadline.after(args.timeout, name="--timeout")
    registries = Registries(
        RegistryOptions(
            insecure_registries=frozenset(args.insecure_registry or ()),
            read_timeout=args.request_timeout,
            connect_timeout=min(args.request_timeout, 10.0),
            # The gate (and the record attached after) cannot outlast the whole deploy's --timeout.
            deadline=deadline,
        )
    )
    try:
        decision = evaluate(
            args.image,
            Path(args.policy),
            registries=registries,
            trust_config=args.trust_config,
            project=args.project,
            platform=_platform(args),
        )
        # Code Engine's readiness wait gets what the gate left of --timeout, not a fresh --timeout.
        options = dataclasses.replace(options, timeout=float(max(math.ceil(deadline.left()), 1)))
        outcome = gated_deploy(
            decision,
            ce,
            target,
            options,
            registries=registries,
            audit=(lambda: _iam_audit(args, ce, target)) if args.deployer else None,
            deployer=args.deployer,
        )
    finally:
        registries.close()
    document = summary(outcome)
    if args.output:
        _write_file(args.output, (json.dumps(outcome.record, indent=2) + "\n").encode())
    if args.format == "json":
        print(json.dumps(document, indent=2))
        return 0
    result = outcome.result
    print(f"deployed {result.image_reference}\n  to:       {target} ({result.project.region or 'region ?'})")
    if result.revision:
        label = "job run" if result.job_run else "revision"
        print(f"  {label}: {' ' * (8 - len(label))}{result.revision}")
    print(f"  previous: {result.previous_image or '(created now)'}")
    print(f"  decision: {outcome.record['decision']['digest']} ({decision.verdict}, {decision.mode})")
    print(f"  deployer: {outcome.record['deployer'].get('iamId', 'unknown')}")
    if outcome.attached is not None:
        print(f"  record:   attached as {outcome.attached.digest}")
    if decision.verdict != "allow":
        print("  warning: deployed in warn mode although the policy denies this image")
    for warning in outcome.warnings:
        print(f"  warning: {one_line(warning, 1000)}")
    return 0


def cmd_audit_iam(args: argparse.Namespace) -> int:
    from chaingate.deploy.codeengine import CodeEngine
    from chaingate.errors import EXIT_DENIED

    ce = CodeEngine.connect(region=args.region, auth=_ibm_auth(args), request_timeout=args.request_timeout)
    target = _workload(args) if (args.app or args.job) else None
    report = _iam_audit(args, ce, target)
    if args.format == "json":
        print(json.dumps(report.to_dict(), indent=2))
    else:
        verdict = "passed" if report.passed else "FAILED"
        print(one_line(f"IAM audit of project {report.project.id} ({report.project.name}) for deployer "
                       f"{report.deployer}: {verdict}", 2000))  # fmt: skip
        for grant in report.grants:
            print(
                "  "
                + one_line(
                    f"grant {grant.policy_id}: {grant.subject} holds {', '.join(grant.roles)} on {grant.scope}",
                    2000,
                )
            )
        for profile in report.profiles_checked:
            print(f"  checked trusted profile {profile}")
        for finding in report.findings:
            print(f"  finding: {one_line(finding.subject)}: {one_line(finding.message, 1000)}")
        if not report.deployer_can_write:
            print(
                f"  note: {report.deployer} itself holds no Code Engine write role here; its deploys will fail"
            )
    return 0 if report.passed else EXIT_DENIED


def cmd_audit_bindings(args: argparse.Namespace) -> int:
    from chaingate.deploy.bindings import audit_bindings, load_bindings
    from chaingate.deploy.codeengine import CodeEngine
    from chaingate.errors import EXIT_DENIED

    manifest = load_bindings(Path(args.manifest))
    ce = CodeEngine.connect(region=args.region, auth=_ibm_auth(args), request_timeout=args.request_timeout)
    report = audit_bindings(ce, _workload(args), manifest)
    if args.format == "json":
        print(json.dumps(report.to_dict(), indent=2))
    else:
        state = "no drift" if report.clean else f"{len(report.drift)} difference(s)"
        print(f"bindings of {report.target} vs {manifest.source}: {state}")
        for d in report.drift:
            print(
                "  "
                + one_line(
                    f"{d.change}: {d.identity}: expected {d.expected or '(nothing)'}, runs {d.actual or '(nothing)'}",
                    2000,
                )
            )
    return 0 if report.clean else EXIT_DENIED


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="chaingate",
        description="Verifiable supply chain for container images: SBOM, provenance, keyless attestations, "
        "a policy gate and Code Engine deploys.",
    )
    parser.add_argument("--version", action="version", version=f"chaingate {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--insecure-registry",
        action="append",
        metavar="HOST",
        help="use plain HTTP for this registry host[:port] (loopback hosts always do); repeatable",
    )
    common.add_argument(
        "--timeout",
        type=float,
        default=None,  # 60 per request; verify's is the whole verify's deadline, 300 (see _registries)
        metavar="SECONDS",
        help="per-request read timeout (default 60); for verify, the deadline of the whole verify, every "
        "registry read included, past which it denies (default 300)",
    )
    common.add_argument(
        "--platform", metavar="OS/ARCH[/VARIANT]", help="select one platform of a multi-arch image"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser(
        "inspect", parents=[common], help="digest, platforms and the tree of attachments of an image"
    )
    p.add_argument("image", metavar="IMAGE")
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.set_defaults(func=cmd_inspect)

    p = sub.add_parser("sbom", parents=[common], help="CycloneDX 1.6 SBOM of an image's final filesystem")
    p.add_argument("image", metavar="IMAGE")
    p.add_argument("-o", "--output", metavar="FILE", help="write the SBOM here (default: stdout)")
    p.set_defaults(func=cmd_sbom)

    p = sub.add_parser(
        "copy",
        parents=[common],
        help="copy an image and its attachments between layout, archive and registry",
    )
    p.add_argument("src", metavar="SRC")
    p.add_argument("dst", metavar="DST")
    p.add_argument("--no-referrers", action="store_true", help="copy the image only, not its attachments")
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.set_defaults(func=cmd_copy)

    p = sub.add_parser(
        "provenance",
        parents=[common],
        help="SLSA v1 provenance (an in-toto Statement v1) for an image, from the CI environment or flags",
    )
    p.add_argument("image", metavar="IMAGE")
    p.add_argument("-o", "--output", metavar="FILE", help="write the statement here (default: stdout)")
    p.add_argument(
        "--ci",
        choices=("auto", "none", "github-actions", "tekton", "ibm-toolchain"),
        default="auto",
        help="where the build context comes from (default: detect; none = flags only)",
    )
    p.add_argument("--build-type", metavar="URI", help="buildDefinition.buildType")
    p.add_argument("--builder-id", metavar="URI", help="runDetails.builder.id")
    p.add_argument("--invocation-id", metavar="ID", help="runDetails.metadata.invocationId")
    p.add_argument("--source-uri", metavar="URL", help="source repository (e.g. https://github.com/org/app)")
    p.add_argument("--source-ref", metavar="REF", help="source ref built (e.g. refs/heads/main)")
    p.add_argument("--source-commit", metavar="SHA", help="source commit built (40 or 64 hex digits)")
    p.add_argument("--started-on", metavar="TIME", help="build start, RFC 3339 (…Z) or epoch seconds")
    p.add_argument("--finished-on", metavar="TIME", help="build end, RFC 3339 (…Z) or epoch seconds")
    p.add_argument(
        "--base-image",
        action="append",
        metavar="NAME@DIGEST",
        help="a base image, pinned by digest (repeatable; added to those the image's labels name)",
    )
    p.add_argument(
        "--external-parameter", action="append", metavar="KEY=VALUE", help="add to externalParameters"
    )
    p.add_argument(
        "--internal-parameter", action="append", metavar="KEY=VALUE", help="add to internalParameters"
    )
    p.set_defaults(func=cmd_provenance)

    signing = argparse.ArgumentParser(add_help=False)
    signing.add_argument(
        "--trust-config",
        type=Path,
        metavar="FILE",
        help="Sigstore ClientTrustConfig JSON (default: public-good Sigstore, fetched over TUF)",
    )
    tokens = signing.add_mutually_exclusive_group()
    tokens.add_argument(
        "--identity-token",
        metavar="TOKEN",
        help="OIDC identity token (default: $SIGSTORE_ID_TOKEN, then GitHub Actions' ambient token)",
    )
    tokens.add_argument(
        "--identity-token-file", type=Path, metavar="PATH", help="read the OIDC token from a file"
    )
    signing.add_argument("--format", choices=("text", "json"), default="text")

    p = sub.add_parser(
        "sign",
        parents=[common, signing],
        help="keyless-sign an image (cosign v3 signature: predicate https://sigstore.dev/cosign/sign/v1)",
    )
    p.add_argument("image", metavar="IMAGE")
    p.set_defaults(func=cmd_sign)

    p = sub.add_parser(
        "attest",
        parents=[common, signing],
        help="keyless-sign a predicate about an image and attach the Sigstore bundle as a referrer",
    )
    p.add_argument("image", metavar="IMAGE")
    p.add_argument(
        "--predicate", required=True, metavar="FILE", help="a bare predicate or a whole in-toto Statement v1"
    )
    p.add_argument(
        "--type",
        required=True,
        metavar="TYPE",
        help="slsaprovenance|slsaprovenance1|cyclonedx|spdxjson|vuln|vsa, or a predicate type URI",
    )
    p.set_defaults(func=cmd_attest)

    p = sub.add_parser(
        "verify",
        parents=[common, signing],
        help="the gate: verify every attachment against a policy; exit 0 allowed, 1 denied, 2 usage",
    )
    p.add_argument("image", metavar="IMAGE")
    p.add_argument("--policy", required=True, metavar="FILE", help="the policy file (version 1)")
    p.add_argument("--project", metavar="ID", help="apply this project's override from the policy's projects")
    p.add_argument(
        "-o", "--output", metavar="DECISION", help="write the JSON decision record (with its VSA) here"
    )
    p.add_argument(
        "--no-sign",
        action="store_true",
        help="never sign or attach the decision, even with an identity at hand",
    )
    p.set_defaults(func=cmd_verify)

    ibm = argparse.ArgumentParser(add_help=False)
    ibm.add_argument("--project", required=True, metavar="ID", help="the Code Engine project ID")
    ibm.add_argument(
        "--region", metavar="REGION", help="Code Engine region (e.g. us-south); default: $CODE_ENGINE_URL"
    )
    ibm.add_argument(
        "--auth",
        choices=("apikey", "container", "assume"),
        help="IAM authenticator: a service ID's API key, a compute-resource token + trusted profile, or an "
        "API key assuming a trusted profile (default: the IBM SDK's CODE_ENGINE_* configuration)",
    )
    ibm.add_argument(
        "--apikey-file", type=Path, metavar="FILE", help="read the API key here (default: $IBMCLOUD_API_KEY)"
    )
    ibm.add_argument("--profile-id", metavar="ID", help="trusted profile ID for --auth container|assume")
    ibm.add_argument(
        "--profile-name", metavar="NAME", help="trusted profile name for --auth container|assume"
    )
    ibm.add_argument(
        "--cr-token-file", type=Path, metavar="FILE", help="compute resource token for --auth container"
    )
    ibm.add_argument("--iam-url", metavar="URL", help="IAM token service (default https://iam.cloud.ibm.com)")
    ibm.add_argument("--account-id", metavar="ID", help="the account (default: the project's)")
    ibm.add_argument(
        "--request-timeout",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="per-request timeout for IBM Cloud and registry calls (default 30)",
    )
    ibm.add_argument("--format", choices=("text", "json"), default="text")
    workload = argparse.ArgumentParser(add_help=False)
    which = workload.add_mutually_exclusive_group()
    which.add_argument("--app", metavar="NAME", help="a Code Engine application")
    which.add_argument("--job", metavar="NAME", help="a Code Engine job")

    p = sub.add_parser(
        "deploy",
        parents=[ibm, workload],
        help="verify an image against the policy, then deploy exactly that digest to Code Engine",
    )
    p.add_argument("image", metavar="IMAGE")
    p.add_argument("--policy", required=True, metavar="FILE", help="the policy file (version 1)")
    p.add_argument(
        "--trust-config", type=Path, metavar="FILE", help="Sigstore ClientTrustConfig JSON for verification"
    )
    p.add_argument(
        "--timeout",
        type=float,
        default=600.0,
        metavar="SECONDS",
        help="how long the whole deploy may take, readiness and job run included (default 600)",
    )
    p.add_argument(
        "--deployer",
        metavar="IAM_ID",
        help="first audit IAM: nobody but this identity may deploy to the project",
    )
    p.add_argument(
        "--trusted-profile",
        action="append",
        metavar="ID",
        help="with --deployer: also check this workload trusted profile (repeatable)",
    )
    p.add_argument("--bindings", metavar="FILE", help="apply this secret/config-map bindings manifest too")
    p.add_argument("--image-secret", metavar="NAME", help="the registry access secret Code Engine pulls with")
    p.add_argument("--submit", action="store_true", help="with --job: run the job once and wait for it")
    p.add_argument(
        "--insecure-registry", action="append", metavar="HOST", help="plain HTTP for this registry"
    )
    p.add_argument(
        "--platform", metavar="OS/ARCH[/VARIANT]", help="verify this platform of a multi-arch image"
    )
    p.add_argument("-o", "--output", metavar="FILE", help="also write the deployment record here")
    p.set_defaults(func=cmd_deploy)

    audit = sub.add_parser("audit", help="check that the gate is the only way into a Code Engine project")
    audits = audit.add_subparsers(dest="audit", metavar="AUDIT", required=True)
    p = audits.add_parser(
        "iam",
        parents=[ibm, workload],
        help="fail when anyone but the deployer can write to the project, or the workload's profile is shared",
    )
    p.add_argument("--deployer", required=True, metavar="IAM_ID", help="the one identity allowed to deploy")
    p.add_argument(
        "--trusted-profile",
        action="append",
        metavar="ID",
        help="a workload trusted profile to check (repeatable)",
    )
    p.set_defaults(func=cmd_audit_iam)
    p = audits.add_parser(
        "bindings",
        parents=[ibm, workload],
        help="drift between a bindings manifest and the secrets/config maps a workload runs with",
    )
    p.add_argument("--manifest", required=True, metavar="FILE", help="the bindings manifest (YAML or JSON)")
    p.set_defaults(func=cmd_audit_bindings)
    return parser


def run(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_SafeFormatter("chaingate: %(levelname)s: %(message)s"))
    logging.basicConfig(level=logging.WARNING - 10 * min(args.verbose, 2), handlers=[handler])
    func: Callable[[argparse.Namespace], int] | None = getattr(args, "func", None)
    if func is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        return func(args)
    except ChaingateError as e:
        e.log_and_exit()
    except OSError as e:
        # A file the user named could not be read or written: their input, not our bug.
        where = f"{e.filename}: " if e.filename else ""
        ChaingateError(f"{where}{e.strerror or e}").log_and_exit()
    except KeyboardInterrupt:
        print("chaingate: interrupted", file=sys.stderr)
        return 130
    except Exception as e:
        # Last resort: a parser that let something through (RecursionError, OverflowError,
        # MemoryError, …) is still bad input or our bug, never a verdict. Exit 1 would read as
        # "denied" to a pipeline and a traceback as a crash, so: one line, exit 2.
        log.debug("traceback of the internal error:", exc_info=True)
        detail = one_line(e, 300)
        what = f"{type(e).__name__}: {detail}" if detail else type(e).__name__
        ChaingateError(f"internal error: {what} (run with -vv for the traceback)").log_and_exit()


def main(argv: Sequence[str] | None = None) -> None:
    sys.exit(run(argv))
