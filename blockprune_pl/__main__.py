"""`python -m blockprune_pl ...` and the `blockprune` console script: Hydra over conf/."""

import hydra
from omegaconf import DictConfig

from blockprune_pl import train  # also registers the config resolvers


@hydra.main(version_base="1.3", config_path="../conf", config_name="config")
def main(cfg: DictConfig) -> float:
    results = train.run(cfg)
    # the objective a Hydra sweeper optimises
    return results["final"].get(results["main_metric"], float("nan"))


if __name__ == "__main__":
    main()
