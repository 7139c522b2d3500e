import os

from tests.slurm import slurm_cluster  # noqa: F401  (a session-scoped real SLURM cluster)

# One OpenMP thread a process (this one, and every train.py, worker and SLURM job it starts,
# which inherit it), before anything imports torch. The tests run two at a time on two
# cores (pytest -n 2), and sweeps run two jobs at a time: with torch's default of one
# thread a core, the processes' spin-waiting threads fight over the cores and tiny epochs
# take 10 to 30 times as long. No test depends on the thread count.
os.environ.setdefault("OMP_NUM_THREADS", "1")
