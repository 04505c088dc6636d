"""Files from anyone and outputs in shared folders: bounded reads, confined writes.

Reading: :func:`read_regular_file` and :func:`open_regular_file` open
without blocking (a FIFO named ``x.toml`` would otherwise hang the open),
accept regular files only (never a FIFO, a device such as ``/dev/zero``, a
socket), check the size the file system reports *before* reading, and
never read past the bound (a file that grows, a lying size).

Writing: an output tree (``swaysim run --trace DIR``) is an
:class:`OutputDirectory`. Every folder and file in it is created relative
to its parent's open descriptor with ``O_NOFOLLOW``, so a symbolic link
planted in the tree is refused rather than followed, and a name is always
one sanitized path component (:func:`safe_component`), so nothing lands
outside the tree. A single output file (``--json``, ``-o``) is written
by :func:`write_file_atomically`: to a fresh temporary file beside it, then
renamed over the destination, which replaces a link there instead of
writing through it and never leaves half a file behind. :func:`check_output_file`
and :meth:`OutputDirectory.open_root` create and remove a probe file, so an
unwritable destination fails before any work, with one line.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import re
import secrets
import stat
from typing import IO, TYPE_CHECKING, Final

from swaysim.errors import InvalidArgumentError, OutputError

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path
    from types import TracebackType

    from swaysim._limits import Limit

__all__ = [
    "OutputDirectory",
    "check_output_file",
    "file_kind",
    "open_regular_file",
    "read_regular_file",
    "safe_component",
    "write_file_atomically",
]

_READ_FLAGS: Final = (
    os.O_RDONLY
    | getattr(os, "O_NONBLOCK", 0)
    | getattr(os, "O_CLOEXEC", 0)
    | getattr(os, "O_BINARY", 0)
)
_NOFOLLOW: Final = getattr(os, "O_NOFOLLOW", 0)
_CREATE_FLAGS: Final = (
    os.O_WRONLY
    | os.O_CREAT
    | os.O_EXCL
    | _NOFOLLOW
    | getattr(os, "O_CLOEXEC", 0)
    | getattr(os, "O_BINARY", 0)
)
_DIRECTORY_FLAGS: Final = (
    os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | _NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
)
_DIR_FD: Final = {os.open, os.mkdir, os.unlink, os.rename, os.stat} <= os.supports_dir_fd
"""Whether this platform creates files relative to a folder's descriptor (every POSIX)."""
_UNSAFE_CHARACTERS: Final = re.compile(r"[^A-Za-z0-9_.-]+")
_RESERVED: Final = frozenset(
    {"con", "prn", "aux", "nul", *(f"com{i}" for i in range(10)), *(f"lpt{i}" for i in range(10))}
)
_COMPONENT_MAX: Final = 100


# -- reading ----------------------------------------------------------------------------


def file_kind(mode: int) -> str:
    """What a file is, for messages: ``"a named pipe (FIFO)"``, ``"a file"``..."""
    kinds = (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a named pipe (FIFO)"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISREG, "a file"),
    )
    return next((name for test, name in kinds if test(mode)), "not a regular file")


def _open_regular_fd(path: Path, limit: Limit | None) -> int:
    """A descriptor on ``path`` if it is a regular file within ``limit`` bytes; else raise."""
    fd = os.open(path, _READ_FLAGS)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise InvalidArgumentError(
                f"is {file_kind(info.st_mode)}, not a regular file", field="path", value=str(path)
            )
        if limit is not None and info.st_size > limit.value():
            raise InvalidArgumentError(
                limit.exceeded(f"is {info.st_size:,} bytes"), field="path", value=str(path)
            )
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def read_regular_file(path: Path, limit: Limit) -> bytes:
    """The bytes of the regular file at ``path``, at most ``limit`` of them.

    Raises :class:`~swaysim.errors.InvalidArgumentError` (message: what the
    file is, or its size and the limit) and ``OSError`` (cannot open).
    """
    fd = _open_regular_fd(path, limit)
    bound = limit.value()
    chunks: list[bytes] = []
    size = 0
    try:
        while size <= bound:
            chunk = os.read(fd, min(1 << 20, bound + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    finally:
        os.close(fd)
    if size > bound:
        raise InvalidArgumentError(
            limit.exceeded("is larger than that"), field="path", value=str(path)
        )
    return b"".join(chunks)


def open_regular_file(path: Path) -> IO[bytes]:
    """A binary stream on the regular file at ``path`` (never a FIFO or a device).

    For streaming readers, which bound what they read per line themselves.
    """
    return os.fdopen(_open_regular_fd(path, None), "rb")


# -- names ------------------------------------------------------------------------------


def safe_component(name: str, *, fallback: str = "unnamed") -> str:
    """``name`` as one harmless path component: ``[A-Za-z0-9_.-]``, no leading dot.

    ``..``, ``.``, separators, control characters and names a file system
    reserves (``CON``, ``NUL``...) cannot survive; a long name is cut and
    given a short hash of the original, so distinct names stay distinct.
    """
    text = _UNSAFE_CHARACTERS.sub("_", name).lstrip(".")
    if not text.strip("_"):
        text = fallback
    if text.split(".")[0].lower() in _RESERVED:
        text = "_" + text
    if len(text) > _COMPONENT_MAX:
        digest = hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:8]
        text = f"{text[: _COMPONENT_MAX - 9]}-{digest}"
    return text


def _check_component(name: str) -> None:
    if name != safe_component(name):
        raise InvalidArgumentError(
            f"name={name!r} is not a safe path component", field="name", value=name
        )


# -- writing ----------------------------------------------------------------------------


def _reason(exc: OSError) -> str:
    if exc.errno == errno.ELOOP:
        return "it is a symbolic link, and swaysim never follows links inside its outputs"
    return exc.strerror or str(exc)


def _temporary_name(name: str) -> str:
    return f".{name[:60]}.{secrets.token_hex(6)}.tmp"


class OutputDirectory:
    """A folder swaysim writes into, held open: children are created relative to it.

    Made by :meth:`open_root` (the folder the user named, created if missing)
    or :meth:`subdirectory`. Close it (or use it as a context manager) when done.
    """

    __slots__ = ("_fd", "path")

    def __init__(self, path: Path, fd: int | None) -> None:
        self.path = path
        self._fd = fd

    @classmethod
    def open_root(cls, path: Path, *, option: str = "") -> OutputDirectory:
        """The folder at ``path`` (the user's own choice: a link there is followed),
        created with its parents if missing, and proven writable by creating and
        removing a file in it. Raises :class:`OutputError` naming ``option path``."""
        label = f"{option} {path}".strip()
        try:
            path.mkdir(parents=True, exist_ok=True)
        except FileExistsError:
            raise OutputError(f"{label}: cannot create: it exists and is not a directory") from None
        except OSError as exc:
            raise OutputError(f"{label}: cannot create: {_reason(exc)}") from None
        try:
            fd = os.open(path, _DIRECTORY_FLAGS & ~_NOFOLLOW) if _DIR_FD else None
        except OSError as exc:
            raise OutputError(f"{label}: cannot open: {_reason(exc)}") from None
        directory = cls(path, fd)
        try:
            directory._probe_writable()
        except OSError as exc:
            directory.close()
            raise OutputError(f"{label}: cannot write: {_reason(exc)}") from None
        return directory

    def _probe_writable(self) -> None:
        """Create and remove a file here; raise ``OSError`` if that cannot be done."""
        name = _temporary_name("write-test")
        fd = os.open(self._at(name), _CREATE_FLAGS, 0o600, dir_fd=self._fd)
        os.close(fd)
        os.unlink(self._at(name), dir_fd=self._fd)

    def _at(self, name: str) -> str:
        return name if self._fd is not None else str(self.path / name)

    def subdirectory(self, name: str) -> OutputDirectory:
        """The child folder ``name`` (one safe component), created if missing; a link
        in its place is refused with :class:`OutputError`, never followed."""
        _check_component(name)
        where = self.path / name
        try:
            with contextlib.suppress(FileExistsError):
                os.mkdir(self._at(name), 0o777, dir_fd=self._fd)
            if self._fd is None:
                if where.is_symlink() or not where.is_dir():
                    raise OSError(errno.ELOOP, "not a plain directory")
                return OutputDirectory(where, None)
            fd = os.open(name, _DIRECTORY_FLAGS, dir_fd=self._fd)
        except OSError as exc:
            raise OutputError(f"{where}: cannot create: {self._in_the_way(name, exc)}") from None
        return OutputDirectory(where, fd)

    def _in_the_way(self, name: str, error: OSError) -> str:
        """Why ``name`` could not be opened as a folder: a link, a file, or ``error``."""
        try:
            info = os.stat(self._at(name), dir_fd=self._fd, follow_symlinks=False)
        except OSError:
            return _reason(error)
        if stat.S_ISLNK(info.st_mode):
            return _reason(OSError(errno.ELOOP, "symbolic link"))
        if not stat.S_ISDIR(info.st_mode):
            return f"{file_kind(info.st_mode)} of that name is in the way"
        return _reason(error)

    def create(self, name: str) -> IO[bytes]:
        """A new, empty file ``name`` for writing, replacing whatever entry was there
        (the entry is removed first, so a planted link or hard link is never written
        through)."""
        _check_component(name)
        where = self.path / name
        try:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._at(name), dir_fd=self._fd)
            fd = os.open(self._at(name), _CREATE_FLAGS, 0o666, dir_fd=self._fd)
        except OSError as exc:
            raise OutputError(f"{where}: cannot create: {_reason(exc)}") from None
        return os.fdopen(fd, "wb")

    def write_bytes(self, name: str, data: bytes) -> None:
        """Write ``name`` whole: a temporary file renamed over it (see the module)."""
        _check_component(name)
        _replace_with(self._fd, self.path, name, lambda stream: stream.write(data))

    def close(self) -> None:
        """Release the folder's descriptor; closing twice is harmless."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> OutputDirectory:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"<OutputDirectory {str(self.path)!r} {'open' if self._fd is not None else 'closed'}>"
        )


def _replace_with(
    dir_fd: int | None, folder: Path, name: str, write: Callable[[IO[bytes]], object]
) -> None:
    """Write a temporary file in ``folder`` with ``write``, then rename it to ``name``.

    Raises ``OSError``; the temporary file never outlives a failure.
    """
    temporary = _temporary_name(name)
    at_temporary = temporary if dir_fd is not None else str(folder / temporary)
    at_name = name if dir_fd is not None else str(folder / name)
    fd = os.open(at_temporary, _CREATE_FLAGS, 0o666, dir_fd=dir_fd)
    try:
        with os.fdopen(fd, "wb") as stream:
            write(stream)
        os.rename(at_temporary, at_name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(at_temporary, dir_fd=dir_fd)
        raise


def _parent_fd(path: Path, label: str) -> int | None:
    folder = path.absolute().parent
    if not folder.is_dir():
        raise OutputError(f"{label}: cannot write: no such directory {folder}")
    if not _DIR_FD:
        return None
    try:
        return os.open(folder, _DIRECTORY_FLAGS & ~_NOFOLLOW)
    except OSError as exc:
        raise OutputError(f"{label}: cannot write: {_reason(exc)}") from None


def check_output_file(path: Path, *, option: str = "") -> None:
    """Raise :class:`OutputError` now if ``path`` cannot be written later.

    The folder must exist, ``path`` must not be a folder, and a file must be
    creatable beside it (a probe file is created and removed).
    """
    label = f"{option} {path}".strip()
    if path.is_dir():
        raise OutputError(f"{label}: cannot write: it is a directory")
    with OutputDirectory(path.absolute().parent, _parent_fd(path, label)) as folder:
        try:
            folder._probe_writable()
        except OSError as exc:
            raise OutputError(f"{label}: cannot write: {_reason(exc)}") from None


def write_file_atomically(
    path: Path, write: Callable[[IO[bytes]], object], *, option: str = ""
) -> None:
    """Write ``path`` through ``write(stream)``: a temporary file beside it, renamed over it.

    A link at ``path`` is replaced, never written through; a failure leaves
    ``path`` as it was. Raises :class:`OutputError` naming ``option path``.
    """
    label = f"{option} {path}".strip()
    fd = _parent_fd(path, label)
    try:
        _replace_with(fd, path.absolute().parent, path.name, write)
    except OSError as exc:
        raise OutputError(f"{label}: cannot write: {_reason(exc)}") from None
    finally:
        if fd is not None:
            os.close(fd)
