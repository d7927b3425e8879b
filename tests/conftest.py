"""Test-wide settings.

Under CI (``CI=true``) hypothesis runs derandomised: the same examples on every run, so that a
landing never depends on luck; locally it explores new examples each run (``HYPOTHESIS_PROFILE``
overrides either choice).
"""

import os

from hypothesis import settings

settings.register_profile("ci", derandomize=True, print_blob=True)
settings.register_profile("dev", print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))
