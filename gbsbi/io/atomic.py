"""Write a file under a temporary name and rename it into place, so no partial file is left."""

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from gbsbi.errors import GbsbiError


def check_writable(path: str | os.PathLike) -> Path:
    """Fail early, in the user's words, when ``path`` cannot be written.

    Args:
        path: the output file the user asked for.

    Returns:
        The path, resolved to a :class:`~pathlib.Path`.
    """
    path = Path(path)
    parent = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        raise GbsbiError(f"output path {path} is a directory, expected a file name")
    if not parent.is_dir():
        raise GbsbiError(f"cannot write {path}: folder {parent} does not exist")
    if not os.access(parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise GbsbiError(f"cannot write {path}: permission denied")
    return path


def ensure_folder(path: str | os.PathLike) -> Path:
    """Create the output folder ``path`` (and its parents) if needed, in the user's words."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise GbsbiError(f"cannot create output folder {path} ({err.strerror})") from None
    return path


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it to ``path`` on success, delete on error.

    Args:
        path: the final output file.
    """
    path = check_writable(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def check_new_folder(path: str | os.PathLike, overwrite: bool) -> Path:
    """Refuse an output folder that exists (unless ``overwrite``) or cannot be made."""
    path = Path(path)
    parent = path.parent if str(path.parent) else Path(".")
    if path.exists() and not path.is_dir():
        raise GbsbiError(f"--out {path} is a file, expected a folder")
    if path.exists() and any(path.iterdir()) and not overwrite:
        raise GbsbiError(f"{path} exists and is not empty; pass --overwrite to replace it")
    if not parent.is_dir():
        raise GbsbiError(f"cannot write {path}: folder {parent} does not exist")
    if not os.access(parent, os.W_OK):
        raise GbsbiError(f"cannot write {path}: permission denied")
    return path


@contextlib.contextmanager
def atomic_folder(path: str | os.PathLike, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary folder beside ``path``; it replaces ``path`` on success and is
    deleted on error, so a failed command leaves no partial folder.

    Args:
        path: the final output folder.
        overwrite: replace an existing ``path``.
    """
    import shutil

    path = check_new_folder(path, overwrite)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        yield tmp
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
