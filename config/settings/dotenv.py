"""Load the optional .env file into the environment; variables already set win.

Local and production settings import this first; test settings do not, so a developer's
.env never changes what the test suite does. DJANGO_READ_DOT_ENV=false skips the file.
"""

from pathlib import Path

import environ

if environ.Env().bool("DJANGO_READ_DOT_ENV", default=True):
    environ.Env.read_env(Path(__file__).resolve().parent.parent.parent / ".env")
