"""`python -m blockprune_pl ...` and the `blockprune` console script: Hydra over conf/."""

from pathlib import Path

import hydra
from omegaconf import DictConfig

from blockprune_pl import train  # also registers the config resolvers

# an absolute path: the console script imports this module by name, where Hydra would read a
# relative path as a Python package
CONF = str(Path(__file__).resolve().parents[1] / "conf")


@hydra.main(version_base="1.3", config_path=CONF, config_name="config")
def main(cfg: DictConfig) -> float:
    results = train.run(cfg)
    # the objective a Hydra sweeper optimises
    return results["final"].get(results["main_metric"], float("nan"))


SUBCOMMANDS = ("collect", "export", "bench")


def cli() -> None:
    """`blockprune [collect|export|bench] ...`; anything else is a Hydra run or sweep."""
    import importlib
    import sys

    if len(sys.argv) > 1 and sys.argv[1] in SUBCOMMANDS:
        importlib.import_module(f"blockprune_pl.{sys.argv[1]}").main(sys.argv[2:])
        return
    main()


if __name__ == "__main__":
    main()
