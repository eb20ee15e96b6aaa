"""One function per command: call the library with the parsed flags, print what it returns, give an exit code.

The library raises :class:`ChaingateError` for everything a user can get
wrong; ``chaingate.cli.run`` maps those to exit codes. Each command imports
the library modules it needs in its body, so ``chaingate --version`` and
``--help`` never import requests, sigstore or cyclonedx.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from chaingate.cli import args as flags
from chaingate.cli import render
from chaingate.errors import EXIT_DENIED, ChaingateError

if TYPE_CHECKING:
    from chaingate.deploy.codeengine import CodeEngine
    from chaingate.deploy.interface import IamAuditReport, Target
    from chaingate.signing.predicates import LoadedPredicate


def _json(document: object) -> None:
    print(json.dumps(document, indent=2))


def cmd_inspect(args: argparse.Namespace) -> int:
    from chaingate.inspect import inspect_image, render_text

    with flags.opened_image(args, flags.platform(args)) as opened:
        assert opened.target is not None
        result = inspect_image(opened.store, opened.target, str(opened.reference))
    if args.format == "json":
        _json(result.to_dict())
    else:
        print(render_text(result))
    return 0


def cmd_copy(args: argparse.Namespace) -> int:
    from chaingate.oci.copy import copy_reference

    platform = flags.platform(args)
    registries = flags.registries(args)
    try:
        result = copy_reference(
            args.src,
            args.dst,
            registries,
            platform=platform,
            referrers=not args.no_referrers,
            progress=render.ProgressPrinter(),
        )
    finally:
        registries.close()
    if args.format == "json":
        _json(render.copy_document(result))
    else:
        print(render.copy_text(args.src, args.dst, result))
    return 0


def cmd_mirror(args: argparse.Namespace) -> int:
    from chaingate.policy import load_policy
    from chaingate.verify.mirror import check_destination, mirror_image
    from chaingate.verify.render import render_text

    # Every input is checked before a registry is contacted (docs/design.md, CLI).
    policy = load_policy(Path(args.policy))
    platform = flags.platform(args)
    check_destination(args.dst)  # the trust config is read by the gate before anything else
    registries = flags.registries(args)
    try:
        result = mirror_image(
            args.src,
            args.dst,
            policy,
            registries=registries,
            trust_config=args.trust_config,
            platform=platform,
            progress=render.ProgressPrinter(),
        )
    finally:
        registries.close()
    if args.format == "json":
        _json(result.to_dict())
    else:
        print(render_text(result.decision))
        print(render.mirror_text(result))
    return 0 if result.mirrored else EXIT_DENIED


def cmd_sbom(args: argparse.Namespace) -> int:
    from chaingate.oci.reference import Reference
    from chaingate.sbom.image import image_sbom

    platform = flags.platform(args)
    # Not narrowed on opening: image_sbom narrows an index itself (to linux/amd64 without --platform).
    with flags.opened_image(args) as opened:
        assert opened.target is not None
        ref = opened.reference
        name = ref.name if isinstance(ref, Reference) else str(ref)
        result = image_sbom(
            opened.store, opened.target, name, platform=platform, progress=render.ProgressPrinter()
        )
    render.write_output(args.output, result.document)
    if args.output:
        print(f"wrote CycloneDX 1.6 SBOM of {args.image} ({result.digest}) to {args.output}", file=sys.stderr)
    return 0


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
    with flags.opened_image(args, flags.platform(args)) as opened:
        if opened.target is None:
            raise ChaingateError(f"{args.image}: no image to describe (name a tag or digest)")
        result = image_provenance(
            opened.store,
            opened.target,
            opened.reference,
            context,
            base_images=bases,
            generated_at=datetime.now(UTC).replace(microsecond=0),
        )
    text = json.dumps(result.statement, indent=2) + "\n"
    if args.output:
        render.write_file(args.output, text.encode())
        print(f"wrote {args.output}: SLSA v1 provenance for {args.image} ({result.digest}, {context.system})")
    else:
        sys.stdout.write(text)
    return 0


def _attest(args: argparse.Namespace, loaded: LoadedPredicate) -> int:
    """Shared by ``sign`` and ``attest``: offline checks first, then resolve, sign, attach."""
    from datetime import UTC, datetime

    from chaingate.signing.attest import attest_image, prepare_signer
    from chaingate.signing.tokens import resolve_token
    from chaingate.signing.trust import load_trust_config

    token = resolve_token(token=args.identity_token, token_file=args.identity_token_file, env=os.environ)
    signer = prepare_signer(token, load_trust_config(args.trust_config))
    with flags.opened_image(args, flags.platform(args)) as opened:
        result = attest_image(opened, loaded, signer, now=datetime.now(UTC))
    if args.format == "json":
        _json(result.to_dict())
    else:
        print(render.attestation_text(result))
    return 0


def cmd_sign(args: argparse.Namespace) -> int:
    from chaingate.signing.attest import sign_predicate

    return _attest(args, sign_predicate())


def cmd_attest(args: argparse.Namespace) -> int:
    from chaingate.signing.predicates import load_predicate, predicate_type_for

    predicate_type = predicate_type_for(args.type)
    return _attest(args, load_predicate(Path(args.predicate), predicate_type, type_name=args.type))


def cmd_verify(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from chaingate.verify import verify_image
    from chaingate.verify.render import render_text
    from chaingate.verify.vsa import attach_vsa, verify_document, vsa_signer

    policy = flags.policy(args)
    platform = flags.platform(args)
    signer = vsa_signer(
        identity_token=args.identity_token,
        identity_token_file=args.identity_token_file,
        trust_config=args.trust_config,
        sign=not args.no_sign,
    )
    registries = flags.registries(args)
    try:
        decision = verify_image(
            args.image,
            policy,
            registries=registries,
            trust_config=args.trust_config,
            project=args.project,
            platform=platform,
        )
        attachment = attach_vsa(args.image, decision, signer, registries, now=datetime.now(UTC))
    finally:
        registries.close()
    document = verify_document(decision, attachment)
    if args.output:
        render.write_file(args.output, (json.dumps(document, indent=2) + "\n").encode())
    if args.format == "json":
        _json(document)
    else:
        print(render_text(decision))
        print(render.vsa_text(attachment, args.output))
    return 0 if decision.allowed else EXIT_DENIED


def _iam_audit(args: argparse.Namespace, ce: CodeEngine, target: Target | None) -> IamAuditReport:
    from chaingate.deploy.iam import IamClients, audit_iam

    iam = IamClients.connect(flags.ibm_auth(args), request_timeout=args.request_timeout)
    return audit_iam(
        ce,
        iam,
        args.project,
        args.deployer,
        workload=target,
        profile_ids=tuple(args.trusted_profile or ()),
        account_id=args.account_id,
    )


def cmd_deploy(args: argparse.Namespace) -> int:
    import dataclasses
    import math

    from chaingate.deploy.bindings import load_bindings
    from chaingate.deploy.codeengine import DeployOptions
    from chaingate.deploy.run import evaluate, gated_deploy, summary
    from chaingate.oci.registries import Deadline

    if args.submit and not args.job:
        raise ChaingateError("--submit: only a job is run (an app serves once deployed)")
    target = flags.workload(args)
    options = DeployOptions(
        timeout=args.timeout,
        image_secret=args.image_secret,
        bindings=load_bindings(Path(args.bindings)) if args.bindings else None,
        submit=args.submit,
    )
    ce = flags.code_engine(args)
    # The gate (and the record attached after) cannot outlast the whole deploy's --timeout.
    deadline = Deadline.after(args.timeout, name="--timeout")
    registries = flags.registries(args, deadline)
    try:
        decision = evaluate(
            args.image,
            Path(args.policy),
            registries=registries,
            trust_config=args.trust_config,
            project=args.project,
            platform=flags.platform(args),
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
    if args.output:
        render.write_file(args.output, (json.dumps(outcome.record, indent=2) + "\n").encode())
    if args.format == "json":
        _json(summary(outcome))
        return 0
    print(render.deploy_text(outcome, target))
    return 0


def cmd_audit_iam(args: argparse.Namespace) -> int:
    ce = flags.code_engine(args)
    target = flags.workload(args) if (args.app or args.job) else None
    report = _iam_audit(args, ce, target)
    if args.format == "json":
        _json(report.to_dict())
    else:
        print(render.iam_audit_text(report))
    return 0 if report.passed else EXIT_DENIED


def cmd_audit_bindings(args: argparse.Namespace) -> int:
    from chaingate.deploy.bindings import audit_bindings, load_bindings

    manifest = load_bindings(Path(args.manifest))
    ce = flags.code_engine(args)
    report = audit_bindings(ce, flags.workload(args), manifest)
    if args.format == "json":
        _json(report.to_dict())
    else:
        print(render.bindings_text(report, manifest))
    return 0 if report.clean else EXIT_DENIED
