"""``ablate methods`` prints what the configs declare, fast and without torch."""

import subprocess
import sys

from ablate.cli import main
from trainables.cc import CCConfig


def test_methods_lists_every_hyperparameter_default_and_switch(capsys):
    assert main(["methods"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("cc - CC: Contrastive Clustering")
    for key in CCConfig().flat():
        assert f"{key}: " in out, key
    assert "tau_instance: 0.5 " in out and "optim.lr: 0.0003 " in out
    assert "loss.instance: true" in out and "loss.entropy: true" in out


def test_unknown_method_exits_2_with_one_line(capsys):
    assert main(["methods", "nope"]) == 2
    err = capsys.readouterr().err
    assert err == (
        "ablate methods: unknown method 'nope'; "
        "registered methods: cc, cces, gacl, gcc, ghdcc, kmeans, nncc\n"
    )


def test_console_script_does_not_import_torch():
    code = (
        "import sys; from ablate.cli import main; main(['methods']); "
        "print('TORCH', 'torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().endswith("TORCH False")
