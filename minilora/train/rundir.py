"""Run directories: which directory a training run may write into, and the lock
that keeps it to one writer for the whole run.

A run may write into a directory that

* does not exist yet, or is empty (apart from files minilora left there);
* holds a minilora checkpoint, if it is told what to do with it: ``resume``
  continues it, ``overwrite`` replaces it (the old checkpoint stays until the
  new run's first checkpoint is complete).

Anything else is refused before a byte is written: a path that is a file, an
empty path, a directory of someone else's files, a ``config.json`` minilora
did not write, and a directory another process is writing into.
"""

import pathlib

from minilora.fileio import WriteError, is_temp_file, lock_directory
from minilora.train.checkpoint import CONFIG, OWN_FILES, read_manifest

LOCK = ".minilora.lock"  # stays in the directory; the lock lives on it only while a run holds it


def open_run_directory(directory, resume=False, overwrite=False):
    """Check that a run may write into ``directory``, create it, and lock it.

    Returns the open lock file: closing it (or the process ending, however it
    ends) releases the lock. A second run on the same directory is refused with
    the pid of the first.
    """
    if not str(directory).strip():
        raise ValueError("the output directory is an empty string; name a directory for the checkpoints (--out DIR)")
    if resume and overwrite:
        raise ValueError("resume and overwrite contradict each other: resume continues the checkpoint, overwrite replaces it")
    directory = pathlib.Path(directory)
    if directory.exists() and not directory.is_dir():
        raise ValueError(f"{directory} is a file, not a directory; choose a directory for the checkpoints (--out DIR)")
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise WriteError(err.errno, f"cannot create {directory}: {err.strerror or err}") from err
    lock = lock_directory(directory, LOCK)
    try:
        _check_contents(directory, resume, overwrite)
    except BaseException:
        lock.close()
        raise
    return lock


def _check_contents(directory, resume, overwrite):
    manifest = read_manifest(directory)
    if manifest is None:
        raise ValueError(
            f"{directory / CONFIG} is not a minilora checkpoint (it is unreadable, or another program wrote it); "
            "minilora will not overwrite it: choose another directory, or move the file away"
        )
    meta, owned = manifest
    if "arrays" in meta:  # a checkpoint, not just the marker of a run stopped before its first one
        if not (resume or overwrite):
            raise ValueError(
                f"{directory} holds a checkpoint (step {meta.get('step')}); continue it with --resume, "
                "replace it with --overwrite (resume=True / overwrite=True from Python), or choose another directory"
            )
        return
    if resume:
        return  # loading the checkpoint says what is missing
    foreign = sorted(p.name for p in directory.iterdir() if p.name != LOCK and p.name not in owned and not is_temp_file(p.name, OWN_FILES))
    if foreign:
        shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
        raise ValueError(
            f"{directory} is not empty and holds no minilora checkpoint (it has {shown}); "
            "minilora writes only into a new or empty directory, or one holding its own checkpoint"
        )
