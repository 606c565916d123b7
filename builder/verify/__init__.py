"""Verification of built packages in clean sandboxes."""

from .lifecycle import Report, run_verify

__all__ = ["Report", "run_verify"]
