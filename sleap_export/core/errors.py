"""User-facing errors: each carries one line that names the problem and the fix."""


class SleapExportError(Exception):
    """A problem with the user's input that the CLI reports in one line."""

    exit_code = 1


class InputError(SleapExportError):
    """Bad arguments or files; the CLI exits with status 2."""

    exit_code = 2


# The top-level modules each optional extra (pyproject.toml) brings, for naming the extra a missing import needs.
EXTRA_MODULES = {
    "export": ("torch", "torchvision", "sleap_nn", "onnxslim"),
    "trt": ("tensorrt", "cuda"),
    "openvino": ("openvino",),
    "ray": ("ray",),
}


def install_extra(extra: str) -> str:
    """How to install one of sleap-export's extras, from a package index and from a source checkout."""
    return f"pip install 'sleap-export[{extra}]' (from a source checkout: pip install -e '.[{extra}]')"


def missing_extra(err: ModuleNotFoundError) -> InputError | None:
    """The one-line error for an import that failed because an extra is not installed, or None
    when the missing module belongs to no extra (a broken install: the traceback helps more)."""
    top = (err.name or "").partition(".")[0]
    extra = next((name for name, modules in EXTRA_MODULES.items() if top in modules), None)
    if extra is None:
        return None
    return InputError(f"This needs {top}, part of sleap-export's {extra} extra, which is not installed here; {install_extra(extra)}.")
