"""npz files: arrays in, arrays out, never a pickle, and a clear error for any damaged file."""

import zipfile

import numpy

from minilora.backend import to_numpy


def save_npz(file, arrays):
    """Write a dict of arrays (from any backend) as an uncompressed .npz to an open file."""
    numpy.savez(file, **{name: to_numpy(a) for name, a in arrays.items()})


def load_npz(path):
    """Read every array of an .npz file into a dict, refusing pickled objects.

    The file may be damaged or crafted, so each array's header is checked against
    the bytes actually stored before anything is allocated, and any failure to
    read (a bad zip, an unknown compression method, encryption, a truncated or
    corrupted member, a garbled header) comes out as one ValueError.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            for info in archive.infolist():
                _check_npy_size(archive, info)
        with numpy.load(path, allow_pickle=False) as f:
            return {name: f[name] for name in f.files}
    except Exception as err:  # reading untrusted bytes: every failure means "unreadable"
        raise ValueError(f"{path} is not a readable .npz file of plain arrays ({type(err).__name__}: {err})") from err


def _check_npy_size(archive, info):
    """Refuse a member whose header claims more data than the member holds."""
    with archive.open(info) as member:
        major, _ = numpy.lib.format.read_magic(member)
        read_header = numpy.lib.format.read_array_header_1_0 if major == 1 else numpy.lib.format.read_array_header_2_0
        shape, _, dtype = read_header(member)
        claimed = int(numpy.prod(shape, dtype=object)) * dtype.itemsize
        stored = info.file_size - member.tell()  # the bytes after the header
        if claimed > stored:
            raise ValueError(f"{info.filename} claims shape {shape} ({claimed:,} bytes) but holds {stored:,} bytes")
