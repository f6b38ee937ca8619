import math

import pytest
import torch
from omegaconf import OmegaConf
from torch import nn

from covid_robustness.errors import ConfigError
from covid_robustness.models import table1
from covid_robustness.models.module import CXRClassifier, covid_metrics, update_covid_metrics
from covid_robustness.models.registry import MODELS, count_params, create, names, register, spec
from covid_robustness.models.wrn import WideResNet
from covid_robustness.registry import Registry

from .conftest import CONF

PAPER_MODELS = [n for n in names() if spec(n).paper_params is not None]


def test_registry_lists_every_model_config_and_refuses_an_unknown_name():
    configured = {OmegaConf.load(p).name for p in (CONF / "model").glob("*.yaml")}
    assert configured <= set(names()) and names() == sorted(MODELS.names())
    assert [spec(n).label for n in MODELS.names()] == ["RN-18", "RN-50", "VGG-19", "Inc-v3", "WRN-16-8"]
    with pytest.raises(ConfigError, match="model 'resnet19' is not registered"):
        spec("resnet19")


@pytest.mark.parametrize("name", names())
def test_models_take_one_channel_at_their_smallest_size(name):
    net = create(name, 2).eval()
    size = spec(name).min_size
    with torch.no_grad():
        assert net(torch.rand(2, 1, size, size)).shape == (2, 2)


@pytest.mark.parametrize("name", PAPER_MODELS)
def test_parameter_counts_match_table_one(name):
    _, with_stats = count_params(create(name, 2))
    assert abs(with_stats / spec(name).paper_params - 1) < 0.01


class _Toy(nn.Module):
    def __init__(self, num_classes: int, width: int = 4):
        super().__init__()
        self.conv, self.fc = nn.Conv2d(1, width, 3), nn.Linear(width, num_classes)

    def forward(self, x):
        return self.fc(self.conv(x).mean((2, 3)))


@pytest.fixture
def toy():
    """A model registered by a test, unregistered afterwards."""
    register("toy_in_test", min_size=8, label="Toy")(_Toy)
    yield "toy_in_test"
    MODELS.remove("toy_in_test")


def test_a_registered_model_is_listed_and_created_by_name(toy, capsys, monkeypatch):
    assert toy in names() and MODELS.names()[-1] == toy
    s = spec(toy)
    assert (s.min_size, s.label, s.paper_params) == (8, "Toy", None)
    assert create(toy, 3, width=2)(torch.rand(2, 1, 8, 8)).shape == (2, 3)
    monkeypatch.setattr(table1, "names", lambda: [toy])
    table1.main([])
    row = capsys.readouterr().out.splitlines()[1].split()
    assert row[0] == toy and row[-2:] == ["–", "–"]  # no paper count, no ratio


def test_a_duplicate_registration_is_refused(toy):
    register(toy, min_size=8, label="Toy")(_Toy)  # the same object again: a module imported twice
    with pytest.raises(ConfigError, match="model 'toy_in_test' is already registered"):
        register(toy)(lambda num_classes: _Toy(num_classes))
    with pytest.raises(ConfigError, match="model 'resnet18' is already registered"):
        register("resnet18")(_Toy)
    assert spec("resnet18").label == "RN-18"


def test_a_name_only_timm_knows_builds_with_the_defaults():
    name = "mobilenetv3_small_050"
    assert name not in MODELS and name not in names()
    s = spec(name)
    assert (s.min_size, s.label, s.paper_params) == (32, name, None)
    net = create(name, 2).eval()
    with torch.no_grad():
        assert net(torch.rand(2, 1, 32, 32)).shape == (2, 2)


def test_the_generic_registry():
    reg = Registry("thing", key="cfg.thing")
    reg.register("b", colour="blue")(len)
    reg.register("a")(str)
    assert reg.names() == ["b", "a"] and "a" in reg and "c" not in reg and ["x"] not in reg
    entry = reg.get("b")
    assert entry.obj is len and entry.meta == {"colour": "blue"} and entry.colour == "blue"
    with pytest.raises(AttributeError, match="no metadata 'size'"):
        _ = entry.size
    with pytest.raises(ConfigError, match=r"cfg.thing='c' is not known; choose one of \['b', 'a'\]"):
        reg.get("c")
    with pytest.raises(ConfigError, match="thing 'c' is not known"):
        Registry("thing").get("c")
    reg.remove("b")
    assert reg.names() == ["a"]


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
