"""The array backend: the only package in minilora that imports numpy (or cupy).

Every other module asks this one for its array module, so that moving the
whole library to the GPU is one switch (``use("cupy")``), not a fork of the
code. Two habits keep that switch honest:

* Ops that only call array *methods* (``a @ b``, ``a.sum()``) work on either
  library untouched. Ops that need a free function (``exp``, ``zeros``) ask
  ``get_array_module(array)`` for the library that owns their input.
* Random numbers are drawn on the host from one seeded numpy ``Generator`` and
  then moved to the device, so a seed gives the same numbers on CPU and GPU.

Importing minilora never imports cupy; only ``use("cupy")`` does.

What may live in this package (and nowhere else may import numpy or cupy):

* ``__init__``: choosing the backend, moving arrays between devices, dtype
  questions, and the few array operations whose spelling differs between
  numpy and cupy (``scatter_add``, npz reading and writing);
* ``malloc``: the allocator tuning done once at import;
* ``fake_device``: ``"fake"``, CuPy's rules on the CPU, so code that would
  fail on a GPU fails on every commit;
* ``random``: the one seeded generator.

Nothing here knows about tensors, models or training: a function belongs here
only if it needs numpy or cupy by name. Keep each file under ~250 lines.
"""


import numpy

from minilora.backend.fake_device import DeviceError, FakeDeviceArray, fake, no_host_transfers
from minilora.backend.malloc import MALLOC_TUNED
from minilora.backend.special import erf

# The library new arrays are created with. Read it as ``backend.xp`` at call
# time (never ``from minilora.backend import xp``, which would not follow use()).
xp = numpy
_name = "numpy"

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


# Imported last, like random below: npz files convert with to_numpy above.
from minilora.backend.npz import load_npz, save_npz  # noqa: E402

# Imported last: random draws move their numbers with asarray above.
from minilora.backend.random import (  # noqa: E402
    generator,
    get_rng_state,
    manual_seed,
    new_generator,
    rand,
    randint,
    randn,
    set_rng_state,
)

__all__ = [
    "xp", "float32", "float64", "int64", "BACKENDS", "DEVICES", "MALLOC_TUNED",
    "use", "module_for", "current", "is_device_array", "get_array_module", "asarray",
    "device_of", "to_device", "to_numpy", "device_name", "gpu_available", "synchronize",
    "dtype", "is_floating", "is_integer", "is_array", "all_finite", "scatter_add", "erf",
    "save_npz", "load_npz", "fake", "FakeDeviceArray", "DeviceError", "no_host_transfers",
    "manual_seed", "generator", "new_generator", "get_rng_state", "set_rng_state", "rand", "randn", "randint",
]  # fmt: skip
