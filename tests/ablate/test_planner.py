"""Trial expansion: counts, stable names, random samples shared across seeds."""

import pytest

from ablate.planner import describe_plan, expand, trial_count
from ablate.search_space import Domain, sample_domain
from ablate.study_file import load_study

#: Three variants; no base, so the plan shows only what each variant changes.
PLAN = {
    "base": None,
    "variants": {
        "full": {},
        "no_cluster": {"loss.cluster": False},
        "no_entropy": {"loss.entropy": False},
    },
}


@pytest.mark.parametrize(
    "datasets,seeds,grid,expected",
    [
        (["synthetic"], [0], None, 3),
        (["synthetic", "digits"], [0, 1, 2], None, 18),
        (
            ["synthetic", "digits"],
            [0, 1],
            {"tau_instance": {"values": [0.1, 0.5, 1.0]}, "optim.lr": {"values": [0.001, 0.01]}},
            72,
        ),
    ],
)
def test_grid_counts_are_variants_datasets_seeds_and_points(
    make_study, datasets, seeds, grid, expected
):
    search = {"algorithm": "grid", "space": grid} if grid else None
    study = load_study(make_study("plan", **PLAN, datasets=datasets, seeds=seeds, search=search))
    trials = expand(study)
    assert len(trials) == trial_count(study) == expected
    assert len({t.key for t in trials}) == expected
    assert f"{expected} trials" in describe_plan(study)


def test_variant_overrides_reach_the_resolved_config(make_study):
    study = load_study(make_study("plan", **PLAN, datasets=["synthetic"]))
    configs = {t.variant: t.method_config() for t in expand(study)}
    assert configs["full"].loss.enabled() == ["instance", "cluster", "entropy"]
    assert configs["no_cluster"].loss.enabled() == ["instance", "entropy"]
    assert configs["no_entropy"].loss.enabled() == ["instance", "cluster"]
    text = describe_plan(study)
    assert "no_cluster-synthetic-s0: loss.cluster=False" in text


def test_random_search_is_reproducible_and_seeds_are_replicates(make_study):
    space = {
        "optim.lr": {"distribution": "loguniform", "low": 0.0001, "high": 0.1},
        "batch_size": {"distribution": "int", "low": 16, "high": 64, "step": 16},
        "tau_instance": {"values": [0.2, 0.5]},
    }
    search = {"algorithm": "random", "num_samples": 5, "seed": 7, "metric": "loss"}
    search.update(mode="min", space=space)
    path = make_study("plan", **PLAN, datasets=["synthetic"], seeds=[0, 1], search=search)
    first, again = expand(load_study(path)), expand(load_study(path))
    assert first == again and len(first) == 3 * 5 * 2
    by_sample = {}
    for trial in first:
        point = {k: trial.params[k] for k in ("optim.lr", "batch_size", "tau_instance")}
        by_sample.setdefault((trial.variant, trial.sample), []).append(point)
    for points in by_sample.values():
        assert points[0] == points[1]  # seed 0 and seed 1 share the sampled configuration
    lrs = {p[0]["optim.lr"] for p in by_sample.values()}
    assert len(lrs) == 5 and all(1e-4 <= lr <= 0.1 for lr in lrs)
    assert {p[0]["batch_size"] for p in by_sample.values()} <= {16, 32, 48, 64}


def test_sample_domain_bounds_and_steps():
    import numpy as np

    rng = np.random.default_rng(0)
    ints = [sample_domain(Domain(distribution="int", low=1, high=3), rng) for _ in range(200)]
    assert set(ints) == {1, 2, 3}
    logs = [sample_domain(Domain(distribution="logint", low=1, high=100), rng) for _ in range(200)]
    assert min(logs) >= 1 and max(logs) <= 100
    q = [
        sample_domain(Domain(distribution="uniform", low=0.0, high=1.0, step=0.25), rng)
        for _ in range(100)
    ]
    assert set(q) <= {0.0, 0.25, 0.5, 0.75, 1.0}
    assert sample_domain(Domain(value=3), rng) == 3


def test_optuna_count_is_samples_times_seeds(make_study):
    lr = {"distribution": "loguniform", "low": 0.0001, "high": 0.01}
    search = {"algorithm": "optuna", "num_samples": 4, "metric": "silhouette"}
    search["space"] = {"optim.lr": lr}
    path = make_study(
        "opt", datasets=["synthetic"], seeds=[0, 1, 2], variants=None, base=None, search=search
    )
    study = load_study(path)
    assert trial_count(study) == 12
    assert "optuna (TPE) samples 4 configurations" in describe_plan(study)


def test_quickstart_plan():
    from pathlib import Path

    study = load_study(Path(__file__).resolve().parents[2] / "studies" / "quickstart.yaml")
    assert trial_count(study) == 8
    assert [t.key for t in expand(study)] == [
        "full-digits_size16-s0",
        "full-digits_size16-s1",
        "no_cluster-digits_size16-s0",
        "no_cluster-digits_size16-s1",
        "pixels-digits_size16-s0",
        "pixels-digits_size16-s1",
        "untrained-digits_size16-s0",
        "untrained-digits_size16-s1",
    ]


def test_baselines_add_a_pixel_and_an_untrained_row_on_every_data_set_and_seed(make_study):
    path = make_study(
        "plan",
        **{**PLAN, "base": {"image_size": 16, "epochs": 5}},
        datasets=["synthetic", "digits"],
        seeds=[0, 1],
        baselines=["pixels", "untrained"],
    )
    study = load_study(path)
    trials = expand(study)
    assert trial_count(study) == len(trials) == (3 + 2) * 2 * 2
    pixels = [t for t in trials if t.variant == "pixels"]
    untrained = [t for t in trials if t.variant == "untrained"]
    assert {t.method for t in pixels} == {"kmeans"} and len(pixels) == 4
    assert {t.method for t in untrained} == {"cc"} and len(untrained) == 4
    assert pixels[0].method_config().image_size == 16  # the study's resolution
    config = untrained[0].method_config()
    assert (config.epochs, config.image_size) == (0, 16)
    assert {t.key for t in pixels} >= {"pixels-digits-s1", "pixels-synthetic-s0"}
    assert "pixels-synthetic-s0: image_size=16" in describe_plan(study)


def test_the_end_of_run_table_names_data_sets_as_reports_do(make_study):
    from ablate.closing_table import summary_table

    study = load_study(
        make_study(
            "names",
            datasets=[{"name": "digits", "size": 16}],
            seeds=[0, 1],
        )
    )
    results = [
        (spec, {"acc": 0.5 + spec.seed / 10, "nmi": 0.4, "ari": 0.3}) for spec in expand(study)
    ]
    table = summary_table(study, results).splitlines()
    assert table[2] == "full     Digits (16 px)   2  0.550 ± 0.071  0.400 ± 0.000  0.300 ± 0.000"


def test_the_end_of_run_table_leaves_out_trials_the_scheduler_stopped(make_study):
    """ASHA's stopped trials end on an early epoch: `full n=3 0.227 ± 0.193` from two epoch-1
    snapshots and one finished trial, where `report` gives 0.450 from the finished one."""
    from ablate.closing_table import summary_table

    study = load_study(make_study("asha", seeds=[0, 1, 2], base={"epochs": 6}))
    results = [
        (spec, {"epoch": 6 if spec.seed == 0 else 1, "acc": 0.45 if spec.seed == 0 else 0.1})
        for spec in expand(study)
    ]
    table = summary_table(study, results).splitlines()
    assert table[2].startswith("full ") and " 1  0.450 ± 0.000" in table[2], table
    assert table[-1] == (
        "(2 trials stopped early by the scheduler left out, as `ablate report` leaves them: "
        "full-synthetic_n32_size8-s1, full-synthetic_n32_size8-s2)"
    )
