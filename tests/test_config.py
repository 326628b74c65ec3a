"""Every config option composes, and every object it describes can be built.

The configs are composed with Hydra's compose API exactly as ``run`` composes them; objects
are instantiated with small stand-in facts (no data is read here).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hydra.errors import ConfigCompositionException, InstantiationException
from hydra.utils import instantiate
from omegaconf import OmegaConf

from ecg_lightning.run import instantiate_with_facts, model_from_facts
from ecg_lightning.tasks.classification import ClassificationEMA
from ecg_lightning.summary import CONFIG_DIR, compose_config

FACTS = {"num_classes": 5, "in_channels": 1, "seq_len": 252}
COUNTS = {"class_counts": [400, 30, 60, 10, 0], "num_items": 500}


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONFIG_DIR / group).glob("*.yaml"))


def compose(*overrides: str, tmp_path: Path = Path("/tmp/ecg-lightning-test")):
    return compose_config([*overrides, f"paths.output_dir={tmp_path}"])


def test_every_group_has_options():
    for group in ("data", "model", "loss", "optimizer", "scheduler", "trainer", "callbacks",
                  "logger", "paths", "hydra", "experiment", "debug"):
        assert options(group), f"conf/{group}/ is empty"


def test_every_node_that_builds_an_object_has_a_target():
    cfg = compose()
    for key in ("data", "model", "loss", "optimizer", "trainer"):
        assert "_target_" in cfg[key], key
    assert cfg.optimizer._partial_ is True


@pytest.mark.parametrize("model", options("model"))
def test_model_builds_and_runs_forward(model):
    cfg = compose(f"model={model}")
    net = instantiate_with_facts(cfg.model.net, FACTS)
    inputs = torch.randn(3, FACTS["in_channels"], FACTS["seq_len"])
    if cfg.model._target_.endswith("ReconstructionTask"):  # an autoencoder: its input back
        assert net(inputs).shape == inputs.shape
    else:
        assert net(inputs).shape == (3, FACTS["num_classes"])


@pytest.mark.parametrize("loss", options("loss"))
def test_loss_builds_with_class_counts(loss):
    weighted = ("loss.weighting=inverse",) if loss not in ("l1", "l2") else ()
    cfg = compose(f"loss={loss}", *weighted)
    criterion = instantiate_with_facts(cfg.loss, COUNTS)
    if loss in ("l1", "l2"):  # reconstruction losses: elementwise, the task averages them
        value = criterion(torch.randn(4, 5), torch.randn(4, 5))
        assert value.shape == (4, 5)
    else:
        value = criterion(torch.randn(4, 5), torch.tensor([0, 1, 2, 3]))
    assert torch.isfinite(value).all()


@pytest.mark.parametrize("optimizer", options("optimizer"))
@pytest.mark.parametrize("scheduler", options("scheduler"))
def test_optimizer_and_scheduler_are_partials(optimizer, scheduler):
    cfg = compose(f"optimizer={optimizer}", f"scheduler={scheduler}")
    params = [torch.nn.Parameter(torch.zeros(2))]
    opt = instantiate(cfg.optimizer)(params=params)
    instantiate(cfg.scheduler)(optimizer=opt)


@pytest.mark.parametrize("trainer", options("trainer"))
def test_trainer_config(trainer):
    cfg = compose(f"trainer={trainer}")
    if cfg.trainer.accelerator == "gpu" and not torch.cuda.is_available():
        assert cfg.trainer.devices == 1  # composes; building it needs a GPU
        return
    instantiate(cfg.trainer, logger=False)


@pytest.mark.parametrize("callbacks", options("callbacks"))
def test_callbacks_config(callbacks):
    cfg = compose(f"callbacks={callbacks}")
    for node in (cfg.callbacks or {}).values():
        instantiate(node)


@pytest.mark.parametrize("logger", options("logger"))
def test_logger_config(logger, tmp_path):
    cfg = compose(f"logger={logger}", f"paths.root_dir={tmp_path}")
    for node in (cfg.logger or {}).values():
        instantiate(node)  # MLflow connects lazily: nothing is written yet


def test_default_tracking_uri_is_sqlite_under_outputs(monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    cfg = compose()
    assert cfg.logger.mlflow.tracking_uri == "sqlite:///./outputs/mlflow.db"


def test_tracking_uri_from_environment(monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5999")
    assert compose().logger.mlflow.tracking_uri == "http://127.0.0.1:5999"


@pytest.mark.parametrize("debug", options("debug"))
def test_debug_presets(debug):
    cfg = compose(f"debug={debug}")
    assert any(k in cfg.trainer for k in ("fast_dev_run", "limit_train_batches", "overfit_batches"))


@pytest.mark.parametrize("experiment", options("experiment"))
def test_experiment_presets_compose(experiment):
    cfg = compose(f"experiment={experiment}")
    assert cfg.experiment_name == experiment
    instantiate(cfg.data)  # validates the data options without reading data
    instantiate_with_facts(cfg.model.net, FACTS)


def test_wrong_option_lists_the_valid_ones():
    with pytest.raises(ConfigCompositionException) as error:
        compose("model=nonexistent")
    assert "lstm" in str(error.value) and "gru" in str(error.value)


def test_wrong_key_is_refused():
    with pytest.raises(ConfigCompositionException, match="lrr"):
        compose("optimizer.lrr=0.1")


def test_resolved_config_has_no_missing_values():
    cfg = compose()
    OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)


def test_model_ema_decay_becomes_the_models_own_ema_callback():
    facts = {**FACTS, "class_names": list("NSVFQ"), "task": "multiclass", "auxiliary_inputs": None,
             "class_counts": [400, 30, 60, 10, 0], "num_items": 500}

    def task(*overrides):  # built as the run builds it (its deep ensemble included)
        return model_from_facts(compose(*overrides), facts)

    (ema,) = task().configure_callbacks()  # the default run: model=beat_cnn averages its weights
    assert isinstance(ema, ClassificationEMA)
    assert task("model.ema_decay=null").configure_callbacks() == []
    with pytest.raises(InstantiationException, match=r"model.ema_decay=1.5"):  # Hydra wraps the ValueError
        task("model.ema_decay=1.5")  # refused when the model is built, before any data is read
