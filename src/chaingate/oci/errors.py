"""The errors of image references, stores and registries.

They live apart from :mod:`chaingate.oci.interface` because the lowest OCI
modules (digests, references, credentials) raise them while the interface
needs those modules: with the errors in the interface, ``digest`` and
``interface`` imported each other. This module imports only the error family.
"""

from __future__ import annotations

from chaingate.errors import ChaingateError


class OCIError(ChaingateError):
    """Base error of image references, stores and registries."""


class InvalidReference(OCIError):
    """An image reference that cannot be parsed."""


class NotFound(OCIError):
    """A manifest, blob, tag or repository that does not exist."""


class DigestMismatch(OCIError):
    """Content that does not match the digest (or size) it was asked for by."""


class SizeLimitExceeded(OCIError):
    """A response larger than it may be."""


class AuthError(OCIError):
    """Credentials were refused, or no credentials fit."""


class RegistryUnavailable(OCIError):
    """The registry could not be reached, or kept failing after bounded retries."""
