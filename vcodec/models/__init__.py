"""Deprecated name of :mod:`vcodec.baselayer.learned` (kept for one release)."""

from vcodec._moved import alias_package

alias_package(__name__, "vcodec.baselayer.learned")
