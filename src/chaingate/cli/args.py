"""Parsed flags to the library's typed inputs, each built in one place for every command that takes it.

Flags shared by several commands (registries and their timeouts, ``--platform``,
the IBM Cloud authenticator, the workload) must mean the same everywhere, so
no command builds these itself. Library modules are imported inside the
functions, for start-up time.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from chaingate.errors import ChaingateError

if TYPE_CHECKING:
    from chaingate.deploy.codeengine import CodeEngine
    from chaingate.deploy.ibmcloud import AuthOptions
    from chaingate.deploy.interface import Target
    from chaingate.oci.interface import Platform
    from chaingate.oci.registries import Deadline, Registries
    from chaingate.oci.stores import OpenedImage
    from chaingate.policy.model import Policy


def registries(args: argparse.Namespace, deadline: Deadline | None = None) -> Registries:
    """The registry clients of one command; the caller closes them.

    ``--timeout`` means three things (docs/design.md, CLI): for ``verify`` the
    deadline of the whole verify (default 300 s, each read at most 60 s); for
    ``deploy`` the whole deploy's, which it passes in as ``deadline`` because
    its readiness wait gets what the gate leaves, and each read is bounded by
    ``--request-timeout``; for every other command one request's (default 60 s).
    """
    from chaingate.oci.registries import Deadline, Registries, RegistryOptions

    if args.command == "deploy":
        per_request: float = args.request_timeout
    elif args.command == "verify":
        whole = args.timeout if args.timeout is not None else 300.0
        deadline = Deadline.after(whole, name="--timeout")
        per_request = min(whole, 60.0)
    else:
        per_request = args.timeout if args.timeout is not None else 60.0
    options = RegistryOptions(
        insecure_registries=frozenset(args.insecure_registry or ()),
        read_timeout=per_request,
        connect_timeout=min(per_request, 10.0),
        deadline=deadline,
    )
    return Registries(options)


def platform(args: argparse.Namespace) -> Platform | None:
    """``--platform``, parsed; a malformed one is a usage error, so parse it before opening anything."""
    from chaingate.oci.interface import Platform

    return Platform.parse(args.platform) if args.platform else None


@contextmanager
def opened_image(args: argparse.Namespace, platform: Platform | None = None) -> Iterator[OpenedImage]:
    """``args.image`` opened with the command's registries; its store and the registries close after.

    The caller parses ``--platform`` first, so a malformed one fails before anything is opened.
    """
    from chaingate.oci.stores import open_image

    clients = registries(args)
    try:
        opened = open_image(args.image, clients, platform=platform)
        with opened.store:
            yield opened
    finally:
        clients.close()


def ibm_auth(args: argparse.Namespace) -> AuthOptions:
    """Explicit authenticator flags; ``method`` None defers to the IBM SDK's external configuration."""
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


def code_engine(args: argparse.Namespace) -> CodeEngine:
    """The Code Engine client of ``--region`` (else ``$CODE_ENGINE_URL``) with the authenticator flags."""
    from chaingate.deploy.codeengine import CodeEngine

    return CodeEngine.connect(region=args.region, auth=ibm_auth(args), request_timeout=args.request_timeout)


def workload(args: argparse.Namespace) -> Target:
    from chaingate.deploy.interface import Target

    if not args.app and not args.job:
        raise ChaingateError(f"{args.command}: name the workload with --app NAME or --job NAME")
    return Target(args.project, "app" if args.app else "job", args.app or args.job)


def policy(args: argparse.Namespace) -> Policy:
    """``--policy FILE``, or the signers-only policy the certificate flags stand for (docs/design.md, CLI).

    The parser makes ``--policy`` and the two identity flags exclusive and one
    of them required; the issuer belongs to an identity and to nothing else,
    which is checked here, before any registry or trust root is contacted.
    """
    from pathlib import Path

    from chaingate.policy import load_policy, signers_only_policy

    issuer: str | None = args.certificate_oidc_issuer
    if args.policy:
        if issuer is not None:
            raise ChaingateError(
                "--certificate-oidc-issuer: not allowed with --policy (the policy file names its signers)"
            )
        return load_policy(Path(args.policy))
    if issuer is None:
        flag = "--certificate-identity" + ("" if args.certificate_identity is not None else "-regexp")
        raise ChaingateError(f"{flag}: needs --certificate-oidc-issuer, the OIDC issuer of that identity")
    return signers_only_policy(
        issuer=issuer, identity=args.certificate_identity, identity_regexp=args.certificate_identity_regexp
    )
