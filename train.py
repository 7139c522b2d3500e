"""Train one configuration of dual-gradient learning (or a sweep of them with -m).

    python train.py                                   # the notebooks' defaults on CIFAR-10
    python train.py model.width=0.5 noise.rate=0.8 lam=0.40 seed=3
    python train.py -m model.width=0.5,1,2 lam=0.42,0.44 'seed=range(10)'
"""

import os
import sys

import hydra

import dgl  # noqa: F401  (registers the config schema and resolvers)
from dgl.config import ConfigError, one_line
from dgl.run import run


@hydra.main(config_path="conf", config_name="config", version_base="1.3")
def main(cfg):
    return run(cfg)


if __name__ == "__main__":
    # Hydra prints a config error over several lines and exits; let it raise instead, so a
    # bad command line ends in one line that names the key and what is allowed.
    os.environ["HYDRA_FULL_ERROR"] = "1"
    try:
        main()
    except ConfigError as e:
        sys.exit(f"error: {e}")
    except Exception as e:
        message = one_line(e)
        if message is None:
            raise
        sys.exit(f"error: {message}")
