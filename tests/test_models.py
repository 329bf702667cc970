"""Model registry: demo nets, the classifier hook, every schema architecture."""

import pytest
import torch
from torch import nn

from lskd.errors import ConfigError
from lskd.models.registry import MODELS, available_models, build_model, classifier
from lskd.schema import schema

SCHEMA_ARCHS = schema()["$defs"]["arch"]["enum"]


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_demo_net_logits(name):
    model = build_model(name, 10, in_channels=1, image_size=28)
    out = model.train()(torch.randn(5, 1, 28, 28))
    assert out.shape == (5, 10)
    assert out.dtype == torch.float32


@pytest.mark.parametrize("name", ["mlp512", "mlp128", "resnet18"])
def test_classifier_input_is_penultimate(name):
    model = build_model(name, 10, in_channels=1, image_size=28).eval()
    fc = classifier(model)
    assert isinstance(fc, nn.Linear)
    assert fc.out_features == 10
    captured = []
    hook = fc.register_forward_hook(lambda m, inp, out: captured.append(inp[0]))
    x = torch.randn(3, 1, 28, 28)
    with torch.no_grad():
        logits = model(x)
        hook.remove()
        assert len(captured) == 1  # the classifier runs exactly once, last
        torch.testing.assert_close(logits, fc(captured[0]), rtol=0, atol=0)
    assert captured[0].shape == (3, fc.in_features)


def test_mlp_penultimate_is_features_output():
    model = build_model("mlp512", 10, 1, 28).eval()
    x = torch.randn(4, 1, 28, 28)
    with torch.no_grad():
        feat = model.features(x)
        assert feat.shape == (4, 256)
        assert (feat >= 0).all()  # after the last ReLU
        assert torch.equal(model(x), classifier(model)(feat))


def test_schema_names_are_known():
    known = set(available_models())
    assert set(MODELS) <= known
    assert set(SCHEMA_ARCHS) <= known, set(SCHEMA_ARCHS) - known


@pytest.mark.parametrize("name", SCHEMA_ARCHS)
def test_schema_arch_builds_and_runs(name):
    # building is the slow part (weight init: ~2 s for vgg11_bn's 129M parameters);
    # a forward pass on 2 images costs < 0.3 s even for wide_resnet50_2: all run one
    model = build_model(name, 10, in_channels=1, image_size=28)
    fc = classifier(model)
    assert fc.out_features == 10
    first_conv = next((m for m in model.modules() if isinstance(m, nn.Conv2d)), None)
    if first_conv is not None:  # grey stem, stride 1 for 28 px images
        assert first_conv.in_channels == 1
        if name != "mobile_half":  # CRD's MobileNetV2 keeps its published stride 2
            assert first_conv.stride == (1, 1)
    with torch.no_grad():
        out = model.eval()(torch.randn(2, 1, 28, 28))
    assert out.shape == (2, 10)
    assert torch.isfinite(out).all()


def test_rgb_imagenet_size_keeps_torchvision_stem():
    model = build_model("resnet18", 7, in_channels=3, image_size=224)
    assert model.conv1.stride == (2, 2)
    assert isinstance(model.maxpool, nn.MaxPool2d)
    assert classifier(model).out_features == 7


def test_unknown_name_raises_config_error():
    with pytest.raises(ConfigError, match="resnet9000") as err:
        build_model("resnet9000", 10, 1, 28)
    assert "mlp512" in str(err.value)  # lists the known names


def test_classifier_needs_a_linear_layer():
    with pytest.raises(ValueError, match="no linear classifier"):
        classifier(nn.Sequential(nn.Conv2d(1, 2, 3)))
