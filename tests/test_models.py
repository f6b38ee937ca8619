import math

import pytest
import torch

from covid_robustness.errors import ConfigError
from covid_robustness.models.module import CXRClassifier, covid_metrics, update_covid_metrics
from covid_robustness.models.registry import count_params, create, names, spec
from covid_robustness.models.wrn import WideResNet


def test_registry_has_the_five_models():
    assert names() == ["inception_v3", "resnet18", "resnet50", "vgg19", "wrn16_8"]
    with pytest.raises(ConfigError, match="model 'resnet19' is not registered"):
        spec("resnet19")


@pytest.mark.parametrize("name", ["resnet18", "resnet50", "inception_v3", "wrn16_8"])
def test_models_take_one_channel_at_their_smallest_size(name):
    net = create(name, 2).eval()
    size = spec(name).min_size
    with torch.no_grad():
        assert net(torch.rand(2, 1, size, size)).shape == (2, 2)


@pytest.mark.parametrize("name", names())
def test_parameter_counts_match_table_one(name):
    _, with_stats = count_params(create(name, 2))
    assert abs(with_stats / spec(name).paper_params - 1) < 0.01


def test_wrn16_8_is_depth_16_widen_8_and_the_stem_downsamples():
    cifar, down = WideResNet(stem="cifar"), WideResNet(stem="downsample")
    assert count_params(cifar)[0] == 10_956_978  # the CIFAR WRN-16-8 with one input channel
    assert count_params(down)[0] - count_params(cifar)[0] == 7 * 7 * 16 - 3 * 3 * 16 + 2 * 16
    assert len(down.blocks) == 6  # (16 - 4) / 6 = 2 blocks in each of 3 groups
    x = torch.rand(1, 1, 64, 64)
    assert down.stem(x).shape[-1] == 16 and cifar.stem(x).shape[-1] == 64


def test_covid_metrics_against_a_hand_counted_confusion():
    # positive (COVID-19) = 1; y: 3 COVID, 2 Normal; predictions: 2 of 3 COVID found, 1 false alarm.
    y = torch.tensor([1, 1, 1, 0, 0])
    pred = torch.tensor([1, 1, 0, 1, 0])
    logits = torch.nn.functional.one_hot(pred, 2).float() * 4
    m = covid_metrics(2)
    update_covid_metrics(m, logits, y, positive=1)
    values = {k: float(v) for k, v in m.compute().items()}
    assert values["acc"] == pytest.approx(3 / 5)
    assert values["sensitivity"] == pytest.approx(2 / 3)
    assert values["specificity"] == pytest.approx(1 / 2)
    assert 0 <= values["auroc"] <= 1


def test_covid_metrics_four_classes_use_covid_against_the_rest():
    y = torch.tensor([0, 0, 1, 2, 3])  # COVID-19 is class 0 in the four-class task
    pred = torch.tensor([0, 2, 0, 2, 3])
    m = covid_metrics(4)
    update_covid_metrics(m, torch.nn.functional.one_hot(pred, 4).float(), y, positive=0)
    values = {k: float(v) for k, v in m.compute().items()}
    assert values["sensitivity"] == pytest.approx(1 / 2)
    assert values["specificity"] == pytest.approx(2 / 3)


def test_normalisation_is_inside_the_model():
    module = CXRClassifier("resnet18", 2, 1, mean=0.4, std=0.2)
    x = torch.rand(2, 1, 32, 32)
    module.eval()
    with torch.no_grad():
        assert torch.allclose(module(x), module.net.net((x - 0.4) / 0.2))


def test_unknown_schedule_is_refused():
    with pytest.raises(ConfigError, match="optim.schedule='linear'"):
        CXRClassifier("resnet18", 2, 1, 0.5, 0.2, schedule="linear")


def test_learning_rate_warms_up_then_follows_the_cosine():
    from types import SimpleNamespace

    module = CXRClassifier("resnet18", 2, 1, 0.5, 0.2, lr=0.1, warmup_epochs=1)
    module._trainer = SimpleNamespace(estimated_stepping_batches=100, max_epochs=10)  # 10 steps an epoch
    config = module.configure_optimizers()
    opt, sched = config["optimizer"], config["lr_scheduler"]["scheduler"]
    lrs = []
    for _ in range(100):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert config["lr_scheduler"]["interval"] == "step"
    assert lrs[0] == pytest.approx(0.01, rel=0.01)  # 1/10 of the rate in the first step
    assert lrs[:10] == sorted(lrs[:10]) and lrs[9] == pytest.approx(0.1 * 0.5 * (1 + math.cos(math.pi * 0.09)))
    assert lrs[10:] == sorted(lrs[10:], reverse=True) and lrs[-1] < 0.001
