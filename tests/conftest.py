from tests.slurm import slurm_cluster  # noqa: F401  (a session-scoped real SLURM cluster)
