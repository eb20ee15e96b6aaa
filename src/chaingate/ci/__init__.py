"""CI adapters: GitHub Actions, Tekton and IBM Toolchain reduced to one build context.

Import :mod:`chaingate.ci.interface` for :class:`BuildContext` and ``detect``;
this package itself imports nothing heavy, so the CLI stays fast to start.
"""
