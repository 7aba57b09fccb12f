"""The core's Jinja templates, installed as the ``quaero_templates`` package.

They sit last in every app's template search path, after the user's ``templates_dir`` and the plugins'
directories, so that either can override one by its file name.
"""

from pathlib import Path

DIRECTORY = Path(__file__).parent
