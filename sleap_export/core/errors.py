"""User-facing errors: each carries one line that names the problem and the fix."""


class SleapExportError(Exception):
    """A problem with the user's input that the CLI reports in one line."""

    exit_code = 1


class InputError(SleapExportError):
    """Bad arguments or files; the CLI exits with status 2."""

    exit_code = 2
