"""CI adapters: GitHub Actions, Tekton and IBM Toolchain reduced to one build context, and a step's result
reported back through each one's channels (``chaingate-ci``, :mod:`chaingate.ci.__main__`).

Import :mod:`chaingate.ci.interface` for :class:`BuildContext` and ``detect``;
this package itself imports nothing heavy, so the CLI stays fast to start.
"""
