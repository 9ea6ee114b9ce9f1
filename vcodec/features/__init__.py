"""Deprecated name of :mod:`vcodec.baselayer.features` (kept for one release)."""

from vcodec._moved import alias_package

alias_package(__name__, "vcodec.baselayer.features")
