"""Hydra launcher ``local_gpus``: a sweep on one machine, spread over its GPUs.

See ``local_gpus_launcher.py`` (module docstring) and ``docs/LOCAL_LAUNCHER.md``.
"""

__version__ = "0.1.0"
