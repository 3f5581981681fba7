"""Code the tests and the benchmarks share, and no tests: scratch databases, broker and
ingester processes, flood publishers, MQTT clients, one polling helper, one query helper,
the dashboard's synthetic history and the browser's driver.

The arrows: ``tests/`` and ``bench/`` import this package; it imports neither of them, and
tests never import bench. Pytest fixtures built on it live in ``tests/fixtures/``.
"""
