"""The fake device: CuPy's rules, on the CPU.

A FakeDeviceArray holds a numpy array behind a wall. Arithmetic, indexing and
array methods work and return device arrays, and the ``fake`` module mirrors
numpy's functions the way ``cupy`` does. Everything that CuPy refuses, this
refuses too, with an error that says what to do instead:

* implicit conversion to numpy (``numpy.asarray(a)``, ``numpy.exp(a)``, any
  numpy function or ufunc handed a device array);
* mixing a host numpy array into device arithmetic (move it with ``asarray``);
* and, inside ``no_host_transfers()``, any read back to the host (``float(a)``,
  ``bool(a)``, ``a.item()``, ``a.get()``): one such sync per step stalls a GPU.

Reductions return 0-d device arrays, never numpy scalars, as on CuPy. The test
suite runs on this device in every CI run, so code that would fail on a GPU
fails on every commit, not only on a machine that has one.
"""

import contextlib

import numpy


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

# Their public home is minilora.backend (as numpy does for its own names), so reprs and
# type names read backend.FakeDeviceArray and backend.DeviceError, wherever the code lives.
FakeDeviceArray.__module__ = DeviceError.__module__ = "minilora.backend"
