"""The array backend: the one module in minilora that imports numpy (or cupy).

Every other module asks this one for its array module, so that moving the
whole library to the GPU is one switch (``use("cupy")``), not a fork of the
code. Two habits keep that switch honest:

* Ops that only call array *methods* (``a @ b``, ``a.sum()``) work on either
  library untouched. Ops that need a free function (``exp``, ``zeros``) ask
  ``get_array_module(array)`` for the library that owns their input.
* Random numbers are drawn on the host from one seeded numpy ``Generator`` and
  then moved to the device, so a seed gives the same numbers on CPU and GPU.

Importing minilora never imports cupy; only ``use("cupy")`` does.
"""

import ctypes
import ctypes.util
import os
import zipfile

import numpy

# ----------------------------------------------------------------------------
# Memory: keep large temporaries in the heap.
#
# glibc serves every allocation above 128 KiB with a fresh mmap and hands it back
# to the system when freed, so each (B, T, C) temporary of every op is faulted in
# page by page on every training step. Raising the mmap threshold and the trim
# threshold once keeps those blocks in the process for reuse: training steps got
# about 25% faster here (README, "Speed and threads"). MINILORA_NO_MALLOPT=1 turns it off.

_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3


def _tune_malloc():
    """Apply the thresholds above if this is glibc; returns whether it did."""
    if os.environ.get("MINILORA_NO_MALLOPT"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (macOS, Windows, musl): leave malloc alone
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    ok = mallopt(_M_MMAP_THRESHOLD, 32 * 1024 * 1024)  # glibc's largest allowed value on 64-bit
    ok &= mallopt(_M_TRIM_THRESHOLD, 1024 * 1024 * 1024)
    ok &= mallopt(_M_TOP_PAD, 64 * 1024 * 1024)
    return bool(ok)


MALLOC_TUNED = _tune_malloc()

# The library new arrays are created with. Read it as ``backend.xp`` at call
# time (never ``from minilora.backend import xp``, which would not follow use()).
xp = numpy
_name = "numpy"
_generator = numpy.random.default_rng(0)

float32 = numpy.float32
float64 = numpy.float64
int64 = numpy.int64


def use(name):
    """Select the array library for new tensors: ``"numpy"`` or ``"cupy"``."""
    global xp, _name
    if name == "numpy":
        xp, _name = numpy, "numpy"
    elif name == "cupy":
        try:
            import cupy
        except ImportError as err:
            raise RuntimeError(
                "backend 'cupy' needs CuPy, which is not installed here. Install it with "
                "`pip install 'minilora[gpu]'` on a machine with an NVIDIA GPU and CUDA 12, "
                "or stay on the default backend with use('numpy')."
            ) from err
        xp, _name = cupy, "cupy"
    else:
        raise ValueError(f"unknown backend {name!r}: choose 'numpy' or 'cupy'")


def current():
    """The name of the selected backend, ``"numpy"`` or ``"cupy"``."""
    return _name


def is_device_array(a):
    """True for a cupy array, told apart by its type's module so cupy is never imported."""
    return type(a).__module__.split(".")[0] == "cupy"


def get_array_module(*arrays):
    """numpy, or cupy if any argument is a cupy array (like ``cupy.get_array_module``)."""
    for a in arrays:
        if is_device_array(a):
            import cupy

            return cupy
    return numpy


def asarray(data, dtype=None):
    """``data`` as an array of the selected backend, copied to the device if needed."""
    return xp.asarray(data, dtype=dtype)


def to_numpy(a):
    """A host numpy array with the values of ``a`` (a copy only when ``a`` lives on the GPU)."""
    if is_device_array(a):
        return a.get()
    return numpy.asarray(a)


def dtype(spec):
    """A dtype object from a name or type (``"float32"``, ``numpy.float64`` ...)."""
    return numpy.dtype(spec)


def is_floating(dtype):
    """True for float16/32/64 dtypes: the only ones a gradient can flow through."""
    return numpy.issubdtype(dtype, numpy.floating)


def is_integer(dtype):
    """True for signed and unsigned integer dtypes (valid indices and class labels)."""
    return numpy.issubdtype(dtype, numpy.integer)


def is_array(obj):
    """True for a numpy or cupy ndarray (not for Python scalars or lists)."""
    return isinstance(obj, numpy.ndarray) or (is_device_array(obj) and hasattr(obj, "shape"))


def all_finite(a):
    """True when every element of ``a`` is finite (one reduction, one host read)."""
    return bool(get_array_module(a).isfinite(a).all())


def scatter_add(target, indices, values):
    """``target[indices] += values`` in place, adding repeated indices up.

    Plain ``target[indices] += values`` is wrong when ``indices`` repeats: each
    duplicate writes the same slot once instead of accumulating. numpy spells
    the accumulating form ``numpy.add.at``; cupy spells it ``cupyx.scatter_add``.
    """
    if is_device_array(target):
        import cupyx

        cupyx.scatter_add(target, indices, values)
    else:
        numpy.add.at(target, indices, values)
    return target


def save_npz(file, arrays):
    """Write a dict of arrays (from any backend) as an uncompressed .npz to an open file."""
    numpy.savez(file, **{name: to_numpy(a) for name, a in arrays.items()})


def load_npz(path):
    """Read every array of an .npz file into a dict, refusing pickled objects."""
    try:
        with numpy.load(path, allow_pickle=False) as f:
            return {name: f[name] for name in f.files}
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as err:
        raise ValueError(f"{path} is not a readable .npz file of plain arrays ({err})") from err


# ----------------------------------------------------------------------------
# Randomness: one seeded generator, drawn on the host, moved to the device.


def manual_seed(seed):
    """Reseed the generator that every random draw in minilora uses."""
    global _generator
    _generator = numpy.random.default_rng(seed)


def generator():
    """The seeded numpy ``Generator`` behind every random draw in minilora."""
    return _generator


def new_generator(seed):
    """A separate numpy ``Generator``, for draws that must not disturb the main stream."""
    return numpy.random.default_rng(seed)


def get_rng_state():
    """The generator's state as a JSON-friendly dict (for checkpoints)."""
    return _generator.bit_generator.state


def set_rng_state(state):
    """Restore a state returned by ``get_rng_state`` (resuming a run exactly)."""
    _generator.bit_generator.state = state


def rand(shape, dtype=float32):
    """Uniform samples in [0, 1) of ``shape``, on the selected backend."""
    return asarray(_generator.random(shape, dtype=numpy.float64).astype(dtype))


def randn(shape, dtype=float32):
    """Standard normal samples of ``shape``, on the selected backend."""
    return asarray(_generator.standard_normal(shape, dtype=numpy.float64).astype(dtype))


def randint(low, high, shape, generator=None):
    """Integers drawn uniformly from [low, high), as int64, on the selected backend.

    ``generator`` (from ``new_generator``) draws from a separate stream instead
    of the main one, e.g. for fixed evaluation batches.
    """
    generator = generator or _generator
    return asarray(generator.integers(low, high, size=shape, dtype=numpy.int64))
