"""Safe outputs: refuse to replace a file unless asked, write under a temporary name and rename,
and leave nothing behind when a run fails."""

import contextlib
import os
import shutil
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


def check_new(path: str | os.PathLike, overwrite: bool) -> Path:
    """:func:`check_writable`, and refuse an existing ``path`` unless ``overwrite``.

    Args:
        path: the output file the user asked for.
        overwrite: the user passed ``--overwrite``.
    """
    path = check_writable(path)
    if path.exists() and not overwrite:
        raise GbsbiError(f"{path} exists; pass --overwrite to replace it")
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
def output_folder(path: str | os.PathLike) -> Iterator[Path]:
    """The output folder ``path``, created if needed; if the run inside fails, what it created
    goes: the folder itself when this call made it (with its parents), else the entries that
    were not there before. Nothing that existed before is touched.

    Args:
        path: the output folder.
    """
    path = Path(path)
    missing = [p for p in (path, *path.parents) if not p.exists()]
    before = set() if missing else set(os.listdir(path))
    ensure_folder(path)
    try:
        yield path
    except BaseException:
        if missing:
            shutil.rmtree(missing[-1], ignore_errors=True)
        else:
            for name in set(os.listdir(path)) - before:
                target = path / name
                if target.is_dir() and not target.is_symlink():
                    shutil.rmtree(target, ignore_errors=True)
                else:
                    target.unlink(missing_ok=True)
        raise


def fsync_replace(tmp: Path, path: Path) -> None:
    """Rename ``tmp`` to ``path`` once its bytes are on disk, then sync the folder: after a
    crash or power loss ``path`` is either the old file or the complete new one."""
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_folder(path.parent)


def _fsync_folder(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # pragma: no cover - a platform without folder handles
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover - some file systems refuse to sync a folder
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, sync: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it to ``path`` on success, delete on error.

    Args:
        path: the final output file.
        sync: put the bytes on disk before the rename (:func:`fsync_replace`), for files a
            crash must not leave half-written (checkpoints, journals).
    """
    path = check_writable(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        yield tmp
        if sync:
            fsync_replace(tmp, path)
        else:
            os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_atomic(path: str | os.PathLike, payload: bytes | str, sync: bool = False) -> Path:
    """Write ``payload`` (bytes, or text as UTF-8) to ``path`` through :func:`atomic_path`."""
    data = payload.encode() if isinstance(payload, str) else payload
    with atomic_path(path, sync) as tmp:
        tmp.write_bytes(data)
    return Path(path)


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
