"""qmail-pkg: declarative recipes to native packages of qmail built with syncdir."""

__version__ = "0.1.0"
