"""Writing files so that a crash never leaves a half-written one behind, and
locking a directory so that two processes never write into it at once."""

import hashlib
import os
import pathlib
import re
import tempfile

TEMP_MARK = ".tmp-"  # atomic_write's temporary files are named ".<target>.tmp-XXXXXXXX"


class WriteError(OSError):
    """A file could not be written (full disk, read-only directory, ...); its old content is untouched."""


class DirectoryLocked(OSError):
    """Another process holds the lock on a directory minilora wants to write into."""


def atomic_write(path, write):
    """Call ``write(file)`` on a temporary file beside ``path``, then rename it into place.

    If ``write`` raises (or the process dies), ``path`` still holds its old
    content and the temporary file is removed (or left as ``.tmp-*`` litter,
    never as ``path``; ``is_temp_file`` recognises it). An OSError (a full disk,
    a read-only directory) comes out as a WriteError that says so.
    """
    path = pathlib.Path(path)
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}{TEMP_MARK}")
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file the usual mode
        os.replace(tmp, path)
        _fsync_directory(path.parent)  # make the rename itself survive a power cut
    except BaseException as err:
        if tmp is not None and os.path.exists(tmp):
            os.remove(tmp)
        if isinstance(err, OSError) and not isinstance(err, WriteError):
            message = f"cannot write {path}: {err.strerror or err}; its previous content, if any, is unchanged"
            raise (WriteError(err.errno, message) if err.errno else WriteError(message)) from err
        raise


def is_temp_file(name, targets):
    """Is ``name`` a temporary file that ``atomic_write`` made for a file whose name
    fully matches the regular expression ``targets``? (Left behind only by a kill.)"""
    return re.fullmatch(rf"\.({targets}){re.escape(TEMP_MARK)}[a-z0-9_]{{8}}", name) is not None


def lock_directory(directory, name=".minilora.lock"):
    """Take an exclusive lock on ``directory`` for this process; returns the open lock file.

    Closing the returned file releases the lock; so does the process dying, however
    it dies, which is why a lock left by a killed run never blocks the next one. The
    holder's pid is written into the file, so a refused process can say who holds it.
    """
    import fcntl  # POSIX only: the one place minilora needs it

    path = pathlib.Path(directory) / name
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as err:
        raise WriteError(err.errno, f"cannot lock {directory}: {err.strerror or err} (minilora must be able to write there)") from err
    file = os.fdopen(fd, "r+")
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = file.read().strip() or "unknown"
        file.close()
        raise DirectoryLocked(
            f"{directory} is in use by another minilora process (pid {holder}); wait for it to finish, "
            "or write to another directory (two runs in one directory would overwrite each other)"
        ) from None
    file.seek(0)
    file.truncate()
    file.write(f"{os.getpid()}\n")
    file.flush()
    return file


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _fsync_directory(directory):
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # some systems (Windows) cannot open a directory; the rename is still atomic
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def sha256_file(path):
    """The sha256 of a file's bytes, as 64 hex digits (read in 1 MiB blocks)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
