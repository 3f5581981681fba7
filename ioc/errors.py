"""Errors a user can fix: ``ioc`` prints their message as one line, not a traceback."""


class SettingError(Exception):
    """A setting that is missing or wrong; the message names it."""


class ServiceFailed(Exception):
    """A service that ``ioc up`` started has died; the message carries its last log lines."""
