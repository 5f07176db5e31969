"""One base error; the CLI turns it into one line on stderr and an exit code."""


class ChipwatchError(Exception):
    """A failure the user can act on. `exit_code` follows DESIGN.md (1 job failed, 2 usage/config)."""

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.hint = hint

    def __str__(self) -> str:
        message = super().__str__()
        return f"{message} ({self.hint})" if self.hint else message


class ConfigError(ChipwatchError):
    exit_code = 2


class UsageError(ChipwatchError):
    exit_code = 2


class QueryError(ChipwatchError):
    exit_code = 2
