"""The code fingerprint in a shared stage's key: what it covers and what it ignores."""

from ablate.stage_sharing import stage_material
from tests.trainables.conftest import TINY
from trainables import fingerprint
from trainables.loop import LoopSettings, Trainer
from trainables.nncc import NNCC, NNCCConfig


def _edited(module, text):
    """Installed sources, with ``text`` appended to ``module``'s."""

    def read(name):
        source = fingerprint.read_module(name)
        return source + text if name == module and source is not None else source

    return read


def test_imports_are_followed_lazy_ones_included():
    closure = fingerprint.module_closure("nncc")
    # nncc binds losses and neighbours through lazy("trainables.…"); neighbours imports
    # precision eagerly; the loop brings the metrics and the evaluation order
    assert {"nncc", "losses", "neighbours", "precision", "loop", "metrics"} <= set(closure)
    assert {"evaluation_order", "augment", "backbones", "heads"} <= set(closure)
    assert not {"gcc", "gacl", "ghdcc", "cces", "cc"} & set(closure)  # other methods
    assert "graphs" in fingerprint.module_closure("gacl")


def test_editing_a_loss_changes_the_key_editing_another_method_does_not():
    base = fingerprint.code_fingerprint("nncc")
    assert fingerprint.code_fingerprint("nncc", _edited("losses", "\n# fixed")) != base
    assert fingerprint.code_fingerprint("nncc", _edited("loop", "\n# fixed")) != base
    assert fingerprint.code_fingerprint("nncc", _edited("gcc", "\n# fixed")) == base
    assert fingerprint.code_fingerprint("gcc", _edited("gcc", "\n# fixed")) != (
        fingerprint.code_fingerprint("gcc")
    )


def test_a_shared_stage_key_holds_the_code_the_device_and_the_precision(synthetic):
    config = NNCCConfig(**{**TINY, "epochs": 1, "pretext": {"epochs": 1, "batch_size": 16}})
    material = stage_material(Trainer(NNCC, config, synthetic, LoopSettings(amp="auto")), 0)
    assert material is not None
    assert material["code"] == fingerprint.code_fingerprint("nncc")
    assert (material["device"], material["precision"]) == ("cpu", "fp32")  # auto on a CPU
    off = stage_material(Trainer(NNCC, config, synthetic, LoopSettings(amp="off")), 0)
    assert off == material  # amp: auto and amp: off both train in float32 on a CPU
