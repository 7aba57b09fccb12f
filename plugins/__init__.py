"""Quaero's built-in plugins, installed as the ``quaero_plugins`` package.

Each one registers through the ``quaero`` entry-point group, exactly like a third-party plugin, and uses
only the public API that ``quaero`` exports.
"""
