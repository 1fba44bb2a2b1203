"""A corpus of bad study files: each gets one message naming the file, the key path, the
line, what was expected and what is allowed; the CLI exits 2 without a traceback."""

import textwrap

import pytest

from ablate.cli import main
from ablate.study_file import load_study
from ablate.yaml_source import StudyFileError

GOOD = """\
name: demo
method: cc
datasets: [synthetic]
seeds: [0, 1]
base:
  epochs: 2
variants:
  full: {}
  no_cluster: {loss.cluster: false}
"""

# (replacement of GOOD's text or a whole file, expected line, expected key path, fragments)
CASES = {
    "unknown method": (
        GOOD.replace("method: cc", "method: ccc"),
        2,
        "method",
        [
            "unknown method 'ccc'",
            "did you mean 'cc'?",
            "Registered methods: cc, cces, gacl, gcc, ghdcc, kmeans, nncc",
        ],
    ),
    "unknown hyperparameter": (
        GOOD.replace("  epochs: 2", "  epochs: 2\n  tau_instanc: 0.3"),
        7,
        "base.tau_instanc",
        ["unknown hyperparameter 'tau_instanc' for method 'cc'", "did you mean 'tau_instance'?"],
    ),
    "wrong type": (
        GOOD.replace("epochs: 2", "epochs: many"),
        6,
        "base.epochs",
        ["valid integer", "'many'"],
    ),
    "unknown loss toggle": (
        GOOD.replace("loss.cluster: false", "loss.clusters: false"),
        9,
        "variants.no_cluster.loss.clusters",
        ["unknown loss switch 'clusters'", "switches: instance, cluster, entropy"],
    ),
    "nested loss toggle": (
        GOOD.replace(
            "no_cluster: {loss.cluster: false}", "no_cluster:\n    loss:\n      entrop: false"
        ),
        11,
        "variants.no_cluster.loss.entrop",
        ["unknown loss switch 'entrop'"],
    ),
    "non-positive temperature": (
        GOOD.replace("  epochs: 2", "  epochs: 2\n  tau_cluster: 0"),
        7,
        "base.tau_cluster",
        ["greater than 0", "got 0"],
    ),
    "variant out of range": (
        GOOD.replace("no_cluster: {loss.cluster: false}", "tiny: {batch_size: 1}"),
        9,
        "variants.tiny.batch_size",
        ["greater than or equal to 2", "got 1"],
    ),
    "every loss off": (
        GOOD.replace(
            "no_cluster: {loss.cluster: false}",
            "none: {loss.cluster: false, loss.instance: false, loss.entropy: false}",
        ),
        9,
        "variants.none.loss",
        ["every loss term is switched off"],
    ),
    "empty grid": (
        GOOD + "search:\n  space:\n    tau_instance: {values: []}\n",
        12,
        "search.space.tau_instance",
        ["empty 'values' list"],
    ),
    "grid value out of range": (
        GOOD + "search:\n  space:\n    tau_instance: {values: [0.5, -1]}\n",
        12,
        "search.space.tau_instance",
        ["greater than 0", "got -1"],
    ),
    "grid with a distribution": (
        GOOD
        + "search:\n  algorithm: grid\n  space:\n"
        + "    optim.lr: {distribution: loguniform, low: 0.001, high: 0.1}\n",
        10,
        "search",
        ["grid search needs 'values' lists"],
    ),
    "bad distribution bounds": (
        GOOD
        + "search:\n  algorithm: random\n  space:\n"
        + "    optim.lr: {distribution: loguniform, low: 0, high: 0.1}\n",
        13,
        "search.space.optim.lr",
        ["loguniform needs low > 0"],
    ),
    "unknown top-level key": (
        GOOD + "seed: 3\n",
        10,
        "seed",
        ["unknown key", "did you mean 'seeds'?", "Allowed here:"],
    ),
    "unknown resources key": (
        GOOD + "resources: {gpu: 1}\n",
        10,
        "resources.gpu",
        ["unknown key", "did you mean 'gpus'?"],
    ),
    "unknown data set": (
        GOOD.replace("[synthetic]", "[cifar11]"),
        3,
        "datasets[0].name",
        ["unknown data set 'cifar11'", "cifar10"],
    ),
    "unknown data set option": (
        GOOD.replace("[synthetic]", "[{name: cifar10, size: 8}]"),
        3,
        "datasets[0]",
        ["no option(s) ['size']", "allowed: subset, subset_seed"],
    ),
    "duplicate key": (
        GOOD.replace("seeds: [0, 1]", "seeds: [0, 1]\nseeds: [2]"),
        5,
        "seeds",
        ["duplicate key"],
    ),
    "object tag": (
        GOOD.replace("seeds: [0, 1]", "seeds: !!python/object/apply:os.system ['true']"),
        4,
        None,
        ["run no code"],
    ),
    "not yaml": (GOOD.replace("seeds: [0, 1]", "seeds: [0, 1"), 5, None, ["not valid YAML"]),
    "optuna over variants": (
        GOOD
        + "search:\n  algorithm: optuna\n  num_samples: 4\n  space:\n"
        + "    tau_instance: {values: [0.1, 0.5]}\n",
        11,
        "search.algorithm",
        ["optuna searches one variant on one data set"],
    ),
    "variant space of a missing variant": (
        GOOD + "search:\n  variant_space:\n    fulll: {tau_instance: {values: [0.1]}}\n",
        12,
        "search.variant_space.fulll",
        ["no such variant"],
    ),
    "reference to a missing variant": (
        GOOD + "reference:\n  fulll: {synthetic: {acc: 0.5}}\n",
        11,
        "reference.fulll",
        ["no such variant"],
    ),
    "bad name": (GOOD.replace("name: demo", "name: my/study"), 1, "name", ["should match pattern"]),
    "repeated seeds": (GOOD.replace("[0, 1]", "[1, 1]"), 4, "seeds", ["seeds repeat"]),
    "random search without a metric": (
        GOOD + "search:\n  algorithm: random\n  space:\n    tau_instance: {values: [0.2]}\n",
        10,
        "search",
        ["picks trials by search.metric, which has no default", "loss (min)", "ablate.selection"],
    ),
    "asha without a metric": (
        GOOD + "scheduler: {type: asha}\n",
        10,
        "scheduler.type",
        ["ASHA stops trials by a metric", "set scheduler.metric"],
    ),
    "a variant named like a baseline row": (
        GOOD.replace("no_cluster: {loss.cluster: false}", "pixels: {loss.cluster: false}")
        + "baselines: [pixels]\n",
        9,
        "variants.pixels",
        ["variant name 'pixels' is the name of a baseline row"],
    ),
    "an unknown baseline": (
        GOOD + "baselines: [raw]\n",
        10,
        "baselines[0]",
        ["'pixels' or 'untrained'"],
    ),
    "a grid value that conflicts with a variant's overrides": (
        GOOD.replace(
            "no_cluster: {loss.cluster: false}",
            "no_cluster: {loss.cluster: false, loss.entropy: false}",
        )
        + "search:\n  space:\n    loss.instance: {values: [true, false]}\n",
        10,
        "search",
        [
            "search point (loss.instance=False) with variant 'no_cluster'",
            "(loss.cluster=False, loss.entropy=False)",
            "every loss term is switched off",
        ],
    ),
    "an optuna candidate that conflicts with the variant": (
        GOOD.replace("  no_cluster: {loss.cluster: false}\n", "").replace(
            "  full: {}", "  full: {loss.cluster: false, loss.entropy: false}"
        )
        + "search:\n  algorithm: optuna\n  metric: loss\n  mode: min\n  space:\n"
        "    loss.instance: {values: [true, false]}\n",
        9,
        "search",
        ["search point (loss.instance=False) with variant 'full'"],
    ),
    **{
        f"search domain {name}": (
            GOOD + "search:\n  algorithm: random\n  num_samples: 2\n  metric: loss\n"
            f"  space:\n    tau_instance: {domain}\n",
            15,
            "search.space.tau_instance",
            [fragment],
        )
        for name, domain, fragment in [
            # each used to end in a traceback: ZeroDivisionError, OverflowError, numpy's bounds
            (
                "int with a fractional step",
                "{distribution: int, low: 1, high: 9, step: 0.5}",
                "int needs a whole-number step (1, 2, ...); got 0.5",
            ),
            (
                "with an infinite bound",
                "{distribution: uniform, low: 0.1, high: .inf}",
                "needs finite bounds; got low=0.1, high=inf",
            ),
            (
                "with an absurd bound",
                "{distribution: int, low: 1, high: 1e30}",
                "bounds beyond ±1e+12 are no hyperparameter",
            ),
            (
                "with a step wider than its range",
                "{distribution: uniform, low: 0.1, high: 0.2, step: 5}",
                "step 5.0 is wider than the range 0.1..0.2",
            ),
        ]
    },
    **{
        f"data-set option {name}": (
            GOOD.replace("datasets: [synthetic]", f"datasets: [{entry}]"),
            3,
            "datasets[0]",
            [fragment],
        )
        for name, entry, fragment in [
            ("size below 4", "{name: digits, size: -3}", "option 'size' is at least 4; got -3"),
            ("subset 0", "{name: fashion_mnist, subset: 0}", "option 'subset' is at least 1"),
            ("unlabeled maybe", "{name: stl10, unlabeled: maybe}", "is true or false; got 'maybe'"),
            ("fractional size", "{name: digits, size: 8.5}", "is a whole number; got 8.5"),
        ]
    },
    "a hundred million random samples": (
        GOOD + "search:\n  algorithm: random\n  num_samples: 100000000\n  metric: loss\n"
        "  space:\n    tau_instance: {distribution: uniform, low: 0.1, high: 1}\n",
        10,
        "search",
        ["400,000,000 trials is more than 10,000: a typo? Pass --force if you mean it"],
    ),
    "a grid of ten billion points": (
        GOOD
        + "search:\n  space:\n"
        + "".join(
            f"    {k}: {{values: {list(range(1, 101))}}}\n"
            for k in ["epochs", "batch_size", "knn_k", "image_size", "seed_offset"][:5]
        ),
        10,
        "search",
        ["trials is more than 10,000"],
    ),
    "analysis control that is no variant": (
        GOOD + "analysis:\n  control: fulll\n",
        11,
        "analysis.control",
        ["no such variant; variants: full, no_cluster"],
    ),
    "image folders stored below the training resolution": (
        GOOD.replace("datasets: [synthetic]", "datasets:\n  - {name: imagenet10, size: 96}"),
        4,
        "datasets[0].size",
        [
            "imagenet10 stored at size 96 would be upsampled to the 224 px that variant 'full'",
            "remove 'size'",
        ],
    ),
    "a batch the workers cannot share equally": (
        GOOD.replace("  epochs: 2", "  epochs: 2\n  batch_size: 30") + "resources: {workers: 4}\n",
        11,
        "resources.workers",
        [
            "variant 'full': batch_size 30 of stage 'train' is not divisible by 4 workers: "
            "each worker encodes an equal share of the batch"
        ],
    ),
    "a searched batch the workers cannot share equally": (
        GOOD + "resources: {workers: 2}\nsearch:\n  space:\n    batch_size: {values: [64, 33]}\n",
        10,
        "resources.workers",
        ["search point (batch_size=33) of variant 'full': batch_size 33 of stage 'train'"],
    ),
    "an NNCC pretext batch the workers cannot share equally": (
        GOOD.replace("method: cc", "method: nncc")
        .replace("  epochs: 2", "  epochs: 2\n  pretext.batch_size: 250")
        .replace("no_cluster: {loss.cluster: false}", "more_augs: {num_augs: 4}")
        + "resources: {workers: 4}\n",
        11,
        "resources.workers",
        ["variant 'full': batch_size 250 of stage 'pretext' is not divisible by 4 workers"],
    ),
    "a display name for nothing the study prints": (
        GOOD + "baselines: [pixels]\nanalysis:\n  names: {synthetic: Synthetic, no_cluster_: x}\n",
        12,
        "analysis.names.no_cluster_",
        [
            "names no data set, row or metric of this study; allowed: synthetic, full, no_cluster, "
            "pixels, acc, nmi, ari"
        ],
    ),
    "a decision whose first look is not the study's seeds": (
        GOOD + "analysis:\n  decide: {looks: [4, 8]}\n",
        11,
        "analysis.decide.looks",
        ["the first look is the study's seeds: 2 seeds, so looks start at 2; got 4"],
    ),
    "looks that do not increase": (
        GOOD.replace("seeds: [0, 1]", "seeds: [0, 1, 2, 3]")
        + "analysis:\n  decide: {looks: [4, 4, 8]}\n",
        11,
        "analysis.decide.looks",
        ["looks must increase; got [4, 4, 8]"],
    ),
    "a decision about a row that is not a variant": (
        GOOD.replace("seeds: [0, 1]", "seeds: [0, 1, 2, 3]")
        + "analysis:\n  decide: {looks: [4, 8], rows: [no_clustr]}\n",
        11,
        "analysis.decide.rows",
        ["'no_clustr' is not a variant other than the control 'full'; allowed: no_cluster"],
    ),
    "a delta per row that misses a row": (
        GOOD.replace("seeds: [0, 1]", "seeds: [0, 1, 2, 3]")
        + "analysis:\n  decide: {looks: [4, 8], delta: {full: 0.1}}\n",
        11,
        "analysis.decide.delta",
        ["one delta per row of the family (no_cluster): missing no_cluster"],
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_study_message(tmp_path, case, capsys):
    text, line, key, fragments = CASES[case]
    path = tmp_path / "study.yaml"
    path.write_text(text)
    with pytest.raises(StudyFileError) as caught:
        load_study(path)
    error = caught.value
    assert error.file == str(path)
    assert error.line == line, str(error)
    message = str(error)
    if key is not None:
        assert f": {key}: " in message, message
    for fragment in fragments:
        assert fragment in message, message
    # the CLI prints exactly that one line and exits 2
    assert main(["validate", str(path)]) == 2
    captured = capsys.readouterr()
    assert captured.err == f"ablate validate: {message}\n"
    assert "Traceback" not in captured.err + captured.out


def test_good_study_and_missing_file(tmp_path, capsys):
    path = tmp_path / "study.yaml"
    path.write_text(GOOD)
    assert main(["validate", str(path)]) == 0
    assert "ok (cc, 4 trials)" in capsys.readouterr().out
    assert main(["validate", str(tmp_path / "missing.yaml")]) == 2
    assert "cannot read the study file" in capsys.readouterr().err


def test_nested_and_dotted_keys_are_equivalent(tmp_path):
    dotted = tmp_path / "a.yaml"
    nested = tmp_path / "b.yaml"
    dotted.write_text(GOOD.replace("  epochs: 2", "  epochs: 2\n  optim.lr: 0.01"))
    nested.write_text(GOOD.replace("  epochs: 2", "  epochs: 2\n  optim:\n    lr: 0.01"))
    assert load_study(dotted).overrides("full") == load_study(nested).overrides("full")


def test_every_shipped_study_validates():
    from pathlib import Path

    studies = sorted((Path(__file__).resolve().parents[2] / "studies").glob("**/*.yaml"))
    assert studies
    for path in studies:
        load_study(path)


def test_validate_imports_neither_torch_nor_ray(tmp_path):
    import subprocess
    import sys

    path = tmp_path / "study.yaml"
    path.write_text(textwrap.dedent(GOOD))
    code = (
        "import sys; from ablate.cli import main; main(['plan', sys.argv[1]]); "
        "print('HEAVY', [m for m in ('torch', 'ray', 'mlflow') if m in sys.modules])"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(path)], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip().endswith("HEAVY []")


def _bomb():
    lines = ['a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for previous, name in zip("abcdefg", "bcdefgh", strict=True):
        lines.append(f"{name}: &{name} [{', '.join([f'*{previous}'] * 9)}]")
    return ("\n".join(lines) + "\n").encode()  # about 400 bytes for 9^8 = 43 million values


HOSTILE = {
    "alias bomb": (_bomb(), "expands to more than 100,000 values"),
    "alias that contains itself": (b"a: &a [*a]\n", "more than 64 levels of nesting"),
    "3,000 levels of brackets": (
        b"a: " + b"[" * 3000 + b"]" * 3000 + b"\n",
        "nested deeper than YAML can read",
    ),
    "not UTF-8": (b"name: caf\xe9\n", "not UTF-8 text (byte 0xe9 at offset 9)"),
    "empty": (b"", "the file is empty"),
    "only a comment": (b"# nothing here\n", "the file is empty"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_or_broken_files_get_one_line_naming_the_file(tmp_path, case, capsys):
    """Each used to exhaust memory, raise RecursionError, or print an unnamed error."""
    content, fragment = HOSTILE[case]
    path = tmp_path / "study.yaml"
    path.write_bytes(content)
    assert main(["validate", str(path)]) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith(f"ablate validate: {path}") and fragment in captured.err
    assert captured.err.count("\n") == 1 and "Traceback" not in captured.err + captured.out


def test_force_admits_a_study_above_the_trial_limit(tmp_path, capsys):
    grid = "".join(
        f"    {k}: {{values: {list(range(2, 103))}}}\n" for k in ("epochs", "batch_size")
    )
    path = tmp_path / "study.yaml"
    path.write_text(GOOD + "search:\n  space:\n" + grid)
    assert main(["validate", str(path)]) == 2
    assert "40,804 trials is more than 10,000" in capsys.readouterr().err
    assert main(["validate", "--force", str(path)]) == 0
    assert "ok (cc, 40804 trials)" in capsys.readouterr().out
