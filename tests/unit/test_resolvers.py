from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from omegaconf import OmegaConf

from blockprune_pl.resolvers import register, sweep_group
from tests.conftest import CONF


def test_sweep_group_is_the_sweep_folder_in_multirun_else_the_default():
    register()
    assert sweep_group("sst2-minilm") == "sst2-minilm"  # no Hydra run: the default
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(
            "config", overrides=["hydra.sweep.dir=multirun/my_grid"], return_hydra_config=True
        )
    cfg.hydra.mode = "MULTIRUN"
    HydraConfig.instance().set_config(cfg)
    try:
        assert sweep_group("sst2-minilm") == "my_grid"
        assert OmegaConf.create({"g": "${sweep_group:x}"}).g == "my_grid"
    finally:
        HydraConfig.instance().cfg = None
