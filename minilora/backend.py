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

A third backend, ``"fake"``, is CuPy's rules on the CPU (see "The fake device"
below): the test suite runs on it in every CI run, so code that would fail on a
GPU fails on every commit, not only on a machine that has one.
"""

import contextlib
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


BACKENDS = ("numpy", "cupy", "fake")
DEVICES = {"cpu": "numpy", "numpy": "numpy", "gpu": "cupy", "cuda": "cupy", "cupy": "cupy", "fake": "fake"}


def use(name):
    """Select the array library for new tensors: ``"numpy"``, ``"cupy"`` or ``"fake"``."""
    global xp, _name
    xp, _name = module_for(name), DEVICES[name]


def module_for(name):
    """The array module behind a backend or device name ("cpu", "gpu", "cuda", "fake", ...)."""
    if name not in DEVICES:
        raise ValueError(f"unknown backend or device {name!r}: choose one of {sorted(DEVICES)}")
    name = DEVICES[name]
    if name == "fake":
        return fake
    if name == "cupy":
        try:
            import cupy
        except ImportError as err:
            raise RuntimeError(
                "backend 'cupy' needs CuPy, which is not installed here. Install it with "
                "`pip install 'minilora[gpu]'` on a machine with an NVIDIA GPU and CUDA 12, "
                "or stay on the default backend with use('numpy')."
            ) from err
        return cupy
    return numpy


def current():
    """The name of the selected backend: ``"numpy"``, ``"cupy"`` or ``"fake"``."""
    return _name


def _is_cupy(a):
    """Told apart by its type's module, so that asking never imports cupy."""
    return type(a).__module__.startswith("cupy")


def is_device_array(a):
    """True for a cupy array or a fake-device array."""
    return isinstance(a, FakeDeviceArray) or _is_cupy(a)


def get_array_module(*arrays):
    """numpy, or the device module of the first device array among the arguments
    (like ``cupy.get_array_module``)."""
    for a in arrays:
        if isinstance(a, FakeDeviceArray):
            return fake
        if _is_cupy(a):
            import cupy

            return cupy
    return numpy


def asarray(data, dtype=None):
    """``data`` as an array: a device array stays on its device, and host data
    (lists, numbers, numpy arrays) goes to the selected backend."""
    if is_device_array(data):
        return get_array_module(data).asarray(data, dtype=dtype)
    return xp.asarray(data, dtype=dtype)


def device_of(a):
    """Where ``a`` lives: "cpu", "gpu" (cupy) or "fake"."""
    if isinstance(a, FakeDeviceArray):
        return "fake"
    return "gpu" if _is_cupy(a) else "cpu"


def to_device(a, device):
    """``a`` moved to ``device`` ("cpu", "gpu", "fake"): the array itself if it is there already."""
    module = module_for(device)
    if get_array_module(a) is module:
        return a
    return module.asarray(to_numpy(a))


def to_numpy(a):
    """A host numpy array with the values of ``a`` (a copy only when ``a`` lives on a device)."""
    if is_device_array(a):
        return a.get()
    return numpy.asarray(a)


def device_name(device):
    """A readable name for ``device``: the GPU's model for "gpu", else the name itself."""
    if DEVICES.get(device) != "cupy":
        return device
    import cupy

    name = cupy.cuda.runtime.getDeviceProperties(cupy.cuda.Device().id)["name"]
    return name.decode() if isinstance(name, bytes) else str(name)


def gpu_available():
    """True where CuPy is installed and sees at least one GPU."""
    try:
        import cupy

        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:  # no cupy, no driver or no device: no GPU to use
        return False


def synchronize(a=None):
    """Wait for the device to finish its queued work (a no-op on the CPU): GPU
    kernels run asynchronously, so a timer must sync before it reads the clock."""
    if a is not None and get_array_module(a).__name__ == "cupy":
        import cupy

        cupy.cuda.get_current_stream().synchronize()


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
    """True for a numpy, cupy or fake-device array (not for Python scalars or lists)."""
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
    if isinstance(target, FakeDeviceArray):
        fake.add_at(target, indices, values)
    elif is_device_array(target):
        import cupyx

        cupyx.scatter_add(target, indices, values)
    else:
        numpy.add.at(target, indices, values)
    return target


def erf(a):
    """The error function erf(a), elementwise, on the backend that owns ``a``.

    numpy has no erf, so the host uses scipy's (a C implementation accurate to a
    few float64 ulps); cupy has its own in cupyx. The exact GELU needs it.
    """
    if isinstance(a, FakeDeviceArray):
        import scipy.special

        return FakeDeviceArray(scipy.special.erf(a._array))
    if _is_cupy(a):
        import cupyx.scipy.special

        return cupyx.scipy.special.erf(a)
    import scipy.special

    return scipy.special.erf(a)


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
# The fake device: CuPy's rules, on the CPU.
#
# A FakeDeviceArray holds a numpy array behind a wall. Arithmetic, indexing and
# array methods work and return device arrays, and the ``fake`` module mirrors
# numpy's functions the way ``cupy`` does. Everything that CuPy refuses, this
# refuses too, with an error that says what to do instead:
#
# * implicit conversion to numpy (``numpy.asarray(a)``, ``numpy.exp(a)``, any
#   numpy function or ufunc handed a device array);
# * mixing a host numpy array into device arithmetic (move it with ``asarray``);
# * and, inside ``no_host_transfers()``, any read back to the host (``float(a)``,
#   ``bool(a)``, ``a.item()``, ``a.get()``): one such sync per step stalls a GPU.
# Reductions return 0-d device arrays, never numpy scalars, as on CuPy.


class DeviceError(TypeError):
    """What CuPy would refuse, caught on the CPU by the fake device."""


class _Transfers:
    forbidden = 0  # > 0 inside no_host_transfers() (blocks nest)


@contextlib.contextmanager
def no_host_transfers():
    """Inside this block, reading a fake-device array back to the host raises
    DeviceError. Wrap a training step in it to prove the step never syncs."""
    _Transfers.forbidden += 1
    try:
        yield
    finally:
        _Transfers.forbidden -= 1


def _to_host(a, what):
    if _Transfers.forbidden:
        raise DeviceError(
            f"{what} reads a device array back to the host inside no_host_transfers(): "
            "on a GPU this waits for every queued kernel. Keep the value on the device "
            "(e.g. accumulate losses in an array) and read it once, outside the step."
        )
    return a._array


def _unwrap(obj):
    """Device arrays to their numpy arrays for the call inside the wall; host arrays refused."""
    if isinstance(obj, FakeDeviceArray):
        return obj._array
    if isinstance(obj, numpy.ndarray):
        raise DeviceError(
            f"a host numpy array of shape {obj.shape} was mixed with device arrays; "
            "CuPy refuses this. Move it first: minilora.backend.to_device(x, \"fake\") "
            "(or the device module's own asarray)."
        )
    if isinstance(obj, (list, tuple)):
        return type(obj)(_unwrap(x) for x in obj)
    if isinstance(obj, dict):
        return {k: _unwrap(v) for k, v in obj.items()}
    return obj


def _wrap(obj):
    """numpy results back behind the wall: scalars from reductions become 0-d arrays."""
    if isinstance(obj, (numpy.ndarray, numpy.generic)):
        return FakeDeviceArray(numpy.asarray(obj))
    if isinstance(obj, tuple) and hasattr(obj, "_fields"):  # numpy.linalg's SVDResult, QRResult
        return type(obj)(*(_wrap(x) for x in obj))
    if isinstance(obj, (list, tuple)):
        return type(obj)(_wrap(x) for x in obj)
    return obj


class FakeDeviceArray:
    """A numpy array that behaves like a cupy array, refusals included."""

    __slots__ = ("_array",)
    __array_priority__ = 1000  # so host_array + device_array asks us, and is refused

    def __init__(self, array):
        self._array = array

    shape = property(lambda self: self._array.shape)
    dtype = property(lambda self: self._array.dtype)
    ndim = property(lambda self: self._array.ndim)
    size = property(lambda self: self._array.size)
    nbytes = property(lambda self: self._array.nbytes)
    T = property(lambda self: FakeDeviceArray(self._array.T))

    def __getattr__(self, name):  # array methods: reshape, sum, astype, argmax, ...
        if name.startswith("_"):  # numpy's own protocols (__array_interface__, ...) stay hidden
            raise AttributeError(name)
        method = getattr(self._array, name)
        return lambda *args, **kwargs: _wrap(method(*_unwrap(args), **_unwrap(kwargs)))

    def __array__(self, dtype=None, copy=None):
        raise DeviceError(
            "implicit conversion of a device array to a numpy array: CuPy refuses this. "
            "Use minilora.backend.to_numpy(a) where a host copy is really wanted."
        )

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        raise DeviceError(
            f"numpy.{ufunc.__name__} was called on a device array. Ask for the array's "
            f"own module: backend.get_array_module(a).{ufunc.__name__}(a)."
        )

    def __array_function__(self, func, types, args, kwargs):
        raise DeviceError(
            f"numpy.{func.__name__} was called on a device array. Ask for the array's "
            f"own module: backend.get_array_module(a).{func.__name__}(...)."
        )

    def __getitem__(self, key):
        return _wrap(self._array[_unwrap(key)])

    def __setitem__(self, key, value):
        self._array[_unwrap(key)] = _unwrap(value)

    def __len__(self):
        return len(self._array)

    def __iter__(self):
        return (self[i] for i in range(len(self)))

    # Reads back to the host: allowed outside no_host_transfers(), refused inside.
    def get(self):
        return _to_host(self, "a.get()").copy()

    def item(self):
        return _to_host(self, "a.item()").item()

    def tolist(self):
        return _to_host(self, "a.tolist()").tolist()

    def __float__(self):
        return float(_to_host(self, "float(a)"))

    def __int__(self):
        return int(_to_host(self, "int(a)"))

    def __index__(self):
        return _to_host(self, "using a as an index").__index__()

    def __bool__(self):
        return bool(_to_host(self, "bool(a) (an if or while on an array)"))

    def __repr__(self):
        return f"fake_device_array({numpy.array2string(self._array)}, dtype={self.dtype})"


def _operator(name):
    """``a + b``, ``-a``, ``a < b``...: numpy's operator behind the wall, a device array out."""
    return lambda self, *other: _wrap(getattr(self._array, name)(*_unwrap(other)))


def _inplace(name):
    """``a += b``: numpy's in-place operator on the array behind the wall; ``a`` stays ``a``."""

    def method(self, other):
        getattr(self._array, name)(_unwrap(other))
        return self

    return method


for _op in "add sub mul truediv floordiv mod pow matmul and or xor lshift rshift".split():
    setattr(FakeDeviceArray, f"__{_op}__", _operator(f"__{_op}__"))
    setattr(FakeDeviceArray, f"__r{_op}__", _operator(f"__r{_op}__"))
    setattr(FakeDeviceArray, f"__i{_op}__", _inplace(f"__i{_op}__"))
for _op in "lt le gt ge eq ne neg pos abs invert".split():
    setattr(FakeDeviceArray, f"__{_op}__", _operator(f"__{_op}__"))
del _op
FakeDeviceArray.__hash__ = None  # __eq__ is elementwise, as on any array


class _FakeModule:
    """numpy's namespace, seen from the fake device: every function takes and
    returns device arrays; only ``asarray``/``array`` accept host data (an upload)."""

    _UPLOADS = ("asarray", "array", "ascontiguousarray", "asanyarray")

    def __init__(self, module):
        self._module = module
        self.__name__ = "fake" if module is numpy else f"fake.{module.__name__.split('.')[-1]}"

    def __getattr__(self, name):
        attr = getattr(self._module, name)
        if isinstance(attr, type(numpy)):
            wrapped = _FakeModule(attr)  # fake.linalg, fake.random, ...
        elif isinstance(attr, type) or not callable(attr):
            return attr  # dtypes (fake.float32), constants (fake.inf, fake.newaxis)
        elif name in self._UPLOADS:
            def wrapped(data, *args, **kwargs):
                if isinstance(data, FakeDeviceArray):
                    return _wrap(attr(data._array, *args, **kwargs))
                return FakeDeviceArray(attr(numpy.array(data, copy=True), *args, **kwargs))
        else:
            def wrapped(*args, **kwargs):
                return _wrap(attr(*_unwrap(args), **_unwrap(kwargs)))
        setattr(self, name, wrapped)  # look each name up once
        return wrapped

    def add_at(self, target, indices, values):
        """Like ``cupyx.scatter_add``: numpy.add.at behind the wall."""
        numpy.add.at(target._array, _unwrap(indices), _unwrap(values))


fake = _FakeModule(numpy)


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


def _place(host_array, like):
    """A host draw moved to the selected backend, or to the device of ``like``."""
    if like is None:
        return asarray(host_array)
    return get_array_module(like).asarray(host_array)


def rand(shape, dtype=float32, like=None):
    """Uniform samples in [0, 1) of ``shape``, on the selected backend (or where ``like`` lives)."""
    return _place(_generator.random(shape, dtype=numpy.float64).astype(dtype), like)


def randn(shape, dtype=float32, like=None):
    """Standard normal samples of ``shape``, on the selected backend (or where ``like`` lives)."""
    return _place(_generator.standard_normal(shape, dtype=numpy.float64).astype(dtype), like)


def randint(low, high, shape, generator=None):
    """Integers drawn uniformly from [low, high), as int64, on the selected backend.

    ``generator`` (from ``new_generator``) draws from a separate stream instead
    of the main one, e.g. for fixed evaluation batches.
    """
    generator = generator or _generator
    return asarray(generator.integers(low, high, size=shape, dtype=numpy.int64))
