"""Special functions that numpy lacks, on whichever library owns the array."""

from minilora.backend.fake_device import FakeDeviceArray


def erf(a):
    """The error function erf(a), elementwise, on the backend that owns ``a``.

    numpy has no erf, so the host uses scipy's (a C implementation accurate to a
    few float64 ulps); cupy has its own in cupyx. The exact GELU needs it (Eq. P3
    in docs/autograd.md).
    """
    if isinstance(a, FakeDeviceArray):
        import scipy.special

        return FakeDeviceArray(scipy.special.erf(a._array))
    if type(a).__module__.startswith("cupy"):  # asked by type, so that numpy arrays never import cupy
        import cupyx.scipy.special

        return cupyx.scipy.special.erf(a)
    import scipy.special

    return scipy.special.erf(a)
