"""``python -m costmodel``: the command-line tool."""

import os
import sys

# ``python -m`` puts the current directory first on sys.path: a sympy.py (or yaml.py, …) there would shadow
# costmodel's own dependencies. costmodel itself is already imported; ``costmodel import pkg.mod:fn`` puts
# the current directory back, after the installed packages.
if sys.path and sys.path[0] in ("", os.getcwd()):
    del sys.path[0]

from .cli import main  # noqa: E402

raise SystemExit(main())
