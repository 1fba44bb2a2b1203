"""Registry rules and closed configs."""

import subprocess
import sys

import pytest
from pydantic import ValidationError

from trainables.cc import CC, CCConfig
from trainables.config import MethodConfig, flatten, unflatten
from trainables.method import Method
from trainables.registry import UnknownMethodError, get_method, register_method


def test_duplicate_name_raises():
    with pytest.raises(ValueError, match="registered twice"):

        @register_method("cc")
        class Impostor(Method[CCConfig]):
            config_class = CCConfig


def test_config_class_must_be_a_method_config():
    with pytest.raises(TypeError, match="MethodConfig subclass"):

        @register_method("broken")
        class Broken(Method[MethodConfig]):
            config_class = dict  # type: ignore[assignment]


def test_unknown_method_lists_known_ones():
    with pytest.raises(
        UnknownMethodError, match="registered methods: cc, cces, gacl, gcc, ghdcc, kmeans, nncc"
    ):
        get_method("ccc")
    assert get_method("cc") is CC


def test_config_is_closed_frozen_and_bounded():
    with pytest.raises(ValidationError, match="extra"):
        CCConfig(tau_instanc=0.5)
    with pytest.raises(ValidationError, match="greater than 0"):
        CCConfig(tau_instance=0)
    with pytest.raises(ValidationError, match="extra"):
        CCConfig(loss={"instanse": False})
    with pytest.raises(ValidationError, match="at least one of instance, cluster, entropy"):
        CCConfig(loss={"instance": False, "cluster": False, "entropy": False})
    with pytest.raises(ValidationError, match="crop_scale"):
        CCConfig(aug={"crop_scale": (0.9, 0.2)})
    config = CCConfig()
    with pytest.raises(ValidationError, match="frozen"):
        config.epochs = 3


def test_defaults_are_the_papers():
    config = CCConfig()
    assert (config.epochs, config.batch_size, config.backbone, config.image_size) == (
        1000,
        256,
        "resnet34",
        224,
    )
    assert (config.optim.name, config.optim.lr, config.optim.weight_decay) == ("adam", 3e-4, 0.0)
    assert (config.tau_instance, config.tau_cluster) == (0.5, 1.0)
    assert config.loss.enabled() == ["instance", "cluster", "entropy"]


def test_flat_and_nested_round_trip():
    flat = CCConfig(optim={"lr": 1e-3}, loss={"entropy": False}).flat()
    assert flat["optim.lr"] == 1e-3 and flat["loss.entropy"] is False
    assert CCConfig(**unflatten(flat)) == CCConfig(optim={"lr": 1e-3}, loss={"entropy": False})
    assert flatten(unflatten({"a.b": 1, "a.c": 2, "d": 3})) == {"a.b": 1, "a.c": 2, "d": 3}


def test_listing_methods_imports_no_torch():
    code = (
        "import sys; from trainables import registered_methods; registered_methods(); "
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize("name", ["gacl", "gcc", "nncc", "ghdcc", "cces", "cc"])
def test_a_partly_given_section_keeps_the_methods_own_defaults(name):
    """A study's ``optim.lr`` changes the learning rate, never the optimiser: each section
    given in part is merged into the method's default for it, at every depth."""
    config_class = get_method(name).config_class
    default = config_class()
    changed = config_class(optim={"lr": 0.0123}, aug={"flip_p": 0.25})
    assert changed.optim == default.optim.model_copy(update={"lr": 0.0123})
    assert changed.aug == default.aug.model_copy(update={"flip_p": 0.25})
    assert changed.flat().keys() == default.flat().keys()
    differing = {k for k, v in changed.flat().items() if default.flat()[k] != v}
    assert differing == {"optim.lr", "aug.flip_p"}


def test_nested_sections_merge_at_every_depth():
    from trainables.gacl import GACLConfig
    from trainables.nncc import NNCCConfig

    nncc = NNCCConfig(pretext={"optim": {"lr": 0.1}})
    assert nncc.pretext.optim.name == "sgd" and nncc.pretext.optim.weight_decay == 1e-4
    assert nncc.pretext.epochs == 500 and nncc.pretext.aug.blur is False
    unflattened = GACLConfig(**unflatten({"optim.lr": 0.05, "loss.graph": False}))
    assert unflattened.optim.name == "sgd" and unflattened.optim.schedule == "cosine"
    assert unflattened.loss.enabled() == ["aug", "near", "intra", "inter", "entropy"]
