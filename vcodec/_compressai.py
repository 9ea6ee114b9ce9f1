"""CompressAI's entropy coding without CompressAI's package ``__init__``.

``import compressai`` runs ``compressai/__init__.py``, which imports every subpackage:
its point-cloud datasets pull ``torch_geometric`` (and with it ``torch._dynamo``), its
registry of transforms does the same, and its model zoo comes along. That costs seconds
per process, and vcodec needs none of it: only the entropy models, the rANS coder and two
small ops. This module registers a bare ``compressai`` package (the real package's spec and
``__path__``, its ``__init__`` not executed) in :data:`sys.modules` before importing the
submodules it needs, so ``compressai.entropy_models`` and ``compressai.ans`` load alone.

Every vcodec import of CompressAI goes through here::

    from vcodec._compressai import GaussianConditional, RansDecoder

Names are loaded on first use (PEP 562), so ``vcodec.baselayer.features`` taking only the rANS coder
does not import the entropy models. When CompressAI was already imported in full (a
training script importing ``compressai`` itself), that module is used as it is.
"""

from __future__ import annotations

import importlib
import importlib.util
import math
import sys
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from types import ModuleType
from typing import TYPE_CHECKING, Any

from vcodec.errors import ModelError

if TYPE_CHECKING:  # what the lazy names are, for type checkers
    from compressai.ans import BufferedRansEncoder, RansDecoder, RansEncoder
    from compressai.entropy_models import (
        EntropyBottleneck,
        EntropyBottleneckVbr,
        EntropyModel,
        GaussianConditional,
    )
    from compressai.ops import LowerBound, quantize_ste
    from torch import Tensor

__all__ = [
    "BufferedRansEncoder",
    "EntropyBottleneck",
    "EntropyBottleneckVbr",
    "EntropyModel",
    "GaussianConditional",
    "LowerBound",
    "RansDecoder",
    "RansEncoder",
    "get_scale_table",
    "quantize_ste",
    "SCALES_MIN",
    "SCALES_MAX",
    "SCALES_LEVELS",
]

#: name -> compressai submodule that defines it
_NAMES: dict[str, str] = {
    "BufferedRansEncoder": "compressai.ans",
    "RansDecoder": "compressai.ans",
    "RansEncoder": "compressai.ans",
    "EntropyBottleneck": "compressai.entropy_models",
    "EntropyBottleneckVbr": "compressai.entropy_models",
    "EntropyModel": "compressai.entropy_models",
    "GaussianConditional": "compressai.entropy_models",
    "LowerBound": "compressai.ops",
    "quantize_ste": "compressai.ops",
}

# compressai.models.base's scale table constants: its module cannot be imported alone (it
# pulls compressai.latent_codecs -> compressai.registry -> torch_geometric), so the one
# function vcodec uses is restated here; tests/test_compressai_shim.py checks it is equal
SCALES_MIN = 0.11
SCALES_MAX = 256
SCALES_LEVELS = 64

# what compressai/__init__.py defines besides importing its subpackages; entropy_models
# calls get_entropy_coder()/available_entropy_coders() on the package at run time
_ENTROPY_CODER = "ans"


def _get_entropy_coder() -> str:
    return str(getattr(sys.modules["compressai"], "_entropy_coder", _ENTROPY_CODER))


def _available_entropy_coders() -> list[str]:
    return list(getattr(sys.modules["compressai"], "_available_entropy_coders", [_ENTROPY_CODER]))


def _set_entropy_coder(entropy_coder: str) -> None:
    package = sys.modules["compressai"]
    if entropy_coder not in _available_entropy_coders():
        raise ValueError(f'Invalid entropy coder "{entropy_coder}", choose from '
                         f'({", ".join(_available_entropy_coders())}).')
    package._entropy_coder = entropy_coder  # type: ignore[attr-defined]


def bare_compressai() -> ModuleType:
    """The ``compressai`` package in :data:`sys.modules`, registered without running its ``__init__``."""
    existing = sys.modules.get("compressai")
    if existing is not None:
        return existing  # already imported (in full by someone else, or bare by us)
    spec = importlib.util.find_spec("compressai")
    if spec is None or spec.submodule_search_locations is None:
        raise ModelError("the entropy coder needs CompressAI, which is not installed; "
                         "reinstall vcodec (pip install -e .) to get it")
    package = importlib.util.module_from_spec(spec)
    # __path__ makes submodule imports work; the __init__ (datasets, zoo, registry) never runs
    package.__path__ = list(spec.submodule_search_locations)
    package._entropy_coder = _ENTROPY_CODER  # type: ignore[attr-defined]
    package._available_entropy_coders = [_ENTROPY_CODER]  # type: ignore[attr-defined]
    package.get_entropy_coder = _get_entropy_coder  # type: ignore[attr-defined]
    package.available_entropy_coders = _available_entropy_coders  # type: ignore[attr-defined]
    package.set_entropy_coder = _set_entropy_coder  # type: ignore[attr-defined]
    package.__vcodec_bare__ = True  # type: ignore[attr-defined]
    sys.modules["compressai"] = package
    return package


@contextmanager
def _scipy_stats_placeholder() -> Iterator[None]:
    """An empty ``scipy.stats`` in :data:`sys.modules` while compressai.entropy_models is imported.

    That module runs ``import scipy.stats`` (about 0.5 s of CPU) for one call at run time,
    ``norm.ppf``, which :func:`_standardized_quantile` replaces; it keeps only the name
    ``scipy``. The placeholder is removed afterwards, so anyone importing scipy.stats later
    gets the real module. (A stdlib LazyLoader does not help: the import statement itself
    reads the module's ``__spec__``, which loads it.)
    """
    if "scipy.stats" in sys.modules or importlib.util.find_spec("scipy") is None:
        yield
        return
    import scipy

    placeholder = ModuleType("scipy.stats")
    sys.modules["scipy.stats"] = placeholder
    try:
        yield
    finally:
        if sys.modules.get("scipy.stats") is placeholder:
            del sys.modules["scipy.stats"]
        if vars(scipy).get("stats") is placeholder:
            del scipy.stats


def _standardized_quantile(quantile: float) -> Any:
    """scipy.stats.norm.ppf for loc 0, scale 1, which is scipy.special.ndtri: the same float."""
    from scipy.special import ndtri

    return ndtri(quantile)


def submodule(name: str) -> ModuleType:
    """Import ``compressai.<name>`` (e.g. ``"entropy_models"``) without the package ``__init__``."""
    package = bare_compressai()
    bare = bool(getattr(package, "__vcodec_bare__", False)) and f"compressai.{name}" not in sys.modules
    try:
        with _scipy_stats_placeholder() if bare and name == "entropy_models" else nullcontext():
            module = importlib.import_module(f"compressai.{name}")
    except ImportError as exc:
        raise ModelError(f"cannot import compressai.{name} ({exc}); reinstall vcodec's dependencies "
                         f"(pip install -e .)") from exc
    if bare and name == "entropy_models":
        # GaussianConditional.update() calls it once per table; bit-identical result
        module.GaussianConditional._standardized_quantile = staticmethod(_standardized_quantile)
    return module


def get_scale_table(min: float = SCALES_MIN, max: float = SCALES_MAX,  # noqa: A002 - compressai's names
                    levels: int = SCALES_LEVELS) -> Tensor:
    """compressai.models.base.get_scale_table: ``levels`` scales spaced evenly in log from min to max."""
    import torch

    return torch.exp(torch.linspace(math.log(min), math.log(max), levels))


def __getattr__(name: str) -> Any:
    module = _NAMES.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(submodule(module.removeprefix("compressai.")), name)
    globals()[name] = value  # later lookups skip __getattr__
    return value
