"""Helpers the tests share: importable as ``support.<module>`` in every pytest import mode.

pytest puts ``tests/`` on ``sys.path`` (``pythonpath`` in pyproject.toml), so
these work under ``--import-mode=importlib`` as well as the default mode,
where helpers found beside a test file by its directory would not.
"""
