"""Deep ensembles (``model.members``): built from the config, trained member by member, decided
by the mean probability; a checkpoint of one predicts as the ensemble."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from ecg_lightning.models.ensemble import DeepEnsemble, combined_logits
from ecg_lightning.predict import load_for_prediction
from ecg_lightning.run import model_from_facts, train
from ecg_lightning.summary import compose_config
from ecg_lightning.tasks.classification import ClassificationTask

FACTS = {"class_names": list("NSVFQ"), "task": "multiclass", "in_channels": 1, "num_classes": 5,
         "seq_len": 252, "auxiliary_inputs": {"rr": 5}, "class_counts": [400, 30, 60, 10, 0],
         "num_items": 500}


def test_combined_logits_are_those_of_the_mean_probability():
    logits = torch.randn(4, 3, 5)  # batch 4, 3 members, 5 classes
    combined = combined_logits(logits, "multiclass")
    torch.testing.assert_close(combined.softmax(-1), logits.softmax(-1).mean(1))
    combined = combined_logits(logits, "multilabel")
    torch.testing.assert_close(combined.sigmoid(), logits.sigmoid().mean(1))


def test_each_member_learns_from_its_own_loss_alone():
    """The ensemble's gradient on a member is its own loss's gradient over K: no member's
    update depends on another's predictions (no learner collusion)."""
    torch.manual_seed(0)
    members = [nn.Linear(6, 3), nn.Linear(6, 3)]
    task = ClassificationTask(net=DeepEnsemble(members), loss=nn.CrossEntropyLoss(),
                              optimizer=torch.optim.SGD, class_names=list("abc"))
    batch = {"signal": torch.randn(8, 6), "target": torch.randint(0, 3, (8,))}
    _, loss, _ = task._logits_and_loss(batch)
    loss.backward()
    alone = members[0].weight.detach().clone().requires_grad_()
    own = nn.functional.cross_entropy(batch["signal"] @ alone.T + members[0].bias, batch["target"])
    own.backward()
    torch.testing.assert_close(members[0].weight.grad, alone.grad / 2)
    # and the decision is the members' mean probability
    probs = task(batch).softmax(-1)
    torch.testing.assert_close(probs, torch.stack([m(batch["signal"]).softmax(-1)
                                                   for m in members]).mean(0))


def composed(tmp_path, *overrides):
    return compose_config([f"paths.output_dir={tmp_path}", *overrides])


def test_model_members_builds_independently_initialised_fused_nets(tmp_path):
    model = model_from_facts(composed(tmp_path), FACTS)  # the default: beat_cnn, members: 3
    assert isinstance(model.net, DeepEnsemble) and len(model.net.members) == 3
    assert model.net.input_names == ("signal", "rr")  # each member has its own RR fusion
    first, second = (m.backbone.features[0][0].weight for m in model.net.members[:2])
    assert not torch.equal(first, second)
    assert not hasattr(model.hparams, "members")  # a build option, not the task's
    single = model_from_facts(composed(tmp_path, "model.members=1"), FACTS)
    assert not isinstance(single.net, DeepEnsemble)
    for bad in ("0", "two"):
        with pytest.raises(ValueError, match="model.members="):
            model_from_facts(composed(tmp_path, f"model.members={bad}"), FACTS)


def test_members_are_refused_for_reconstruction_models(tmp_path):
    cfg = composed(tmp_path, "experiment=ecg5000_lstm_ae", "+model.members=2")
    with pytest.raises(ValueError, match="deep ensembles are built for classification"):
        model_from_facts(cfg, {**FACTS, "auxiliary_inputs": None})


def test_an_ensemble_run_trains_checkpoints_and_tests(tmp_path, mitdb_cache_dir):
    """The default run with two members, a few batches: the one training loop, the EMA, the
    checkpoint and the scored test figures all take the ensemble as one model."""
    cfg = compose_config([f"paths.output_dir={tmp_path}", f"data.cache_dir={mitdb_cache_dir}",
                          "model.members=2", "logger=none", "debug=limit",
                          "trainer.max_epochs=1", "trainer.limit_train_batches=2",
                          "trainer.limit_val_batches=2", "trainer.limit_test_batches=2",
                          "bootstrap_resamples=20", "callbacks.progress_bar.refresh_rate=0"])
    _, metrics = train(cfg)
    assert 0.0 <= metrics["test/nsvf/accuracy"] <= 1.0
    checkpoint = tmp_path / "checkpoints" / "last.ckpt"
    state = torch.load(checkpoint, weights_only=True)["state_dict"]
    assert any(key.startswith("net.members.1.") for key in state)
    _, _, model, _ = load_for_prediction(str(checkpoint))  # predict and evaluate rebuild it
    assert isinstance(model.net, DeepEnsemble) and len(model.net.members) == 2
