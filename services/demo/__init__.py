"""A demo city to load into a running suite: `commonroom up --demo`.

`city` builds the data (pure, deterministic from a seed and a date); `load` sends it through the
services' public HTTP APIs, so it works against any deployment.
"""
