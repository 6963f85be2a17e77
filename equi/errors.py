"""Errors that mean "the user asked for something that cannot run"; run.py prints them as one line."""


class UserError(Exception):
    """Bad input that the user can fix; shown without a stack trace."""


class ConfigError(UserError):
    """A config value, key or combination that does not exist."""


class MissingAssetError(UserError):
    """Data or pretrained weights that are not on this machine."""
