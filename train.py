"""Train one configuration of dual-gradient learning (or a sweep of them with -m).

    python train.py                                   # the notebooks' defaults on CIFAR-10
    python train.py model.width=0.5 noise.rate=0.8 lam=0.40 seed=3
    python train.py -m model.width=0.5,1,2 lam=0.42,0.44 'seed=range(10)'
"""

import hydra

import dgl  # noqa: F401  (registers the config resolvers)
from dgl.run import run


@hydra.main(config_path="conf", config_name="config", version_base="1.3")
def main(cfg):
    return run(cfg)


if __name__ == "__main__":
    main()
