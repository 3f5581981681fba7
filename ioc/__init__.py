"""The thin application shell: settings, the ``ioc`` command, and ``ioc up``."""
