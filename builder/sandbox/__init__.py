"""Isolated build environments behind one small interface (base.py), one
module per backend: docker.py (a container per sandbox) and jail.py (a
FreeBSD jail per sandbox, locally or over ssh). images.py reads the image
definitions in containers/. None of them names a family or imports a
platform; builder/environment.py picks the backend and makes what is missing.
"""

from .base import Environment, OutputSink, Sandbox

__all__ = ["Environment", "OutputSink", "Sandbox"]
