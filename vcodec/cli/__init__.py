"""The ``vcodec`` command line; see :mod:`vcodec.cli.main`."""
