"""Every shipped study's rows against the papers' ablation tables.

GACL Tables 1-3, CCES Tables 2-4, GCC Tables 1-5, NNCC Tables 2-3; GHDCC's are not legible.

For each ablation row, the keys in which its resolved configuration differs from the study's
full model must be exactly the switches the paper's row names, with the row's values; sweeps
must cover the paper's grid. A row that silently drops, adds or misnames a switch fails.
"""

from pathlib import Path

import pytest

from ablate.planner import expand
from ablate.study_file import load_study

STUDIES = Path(__file__).resolve().parents[1] / "studies"

OFF = False
GACL_TABLE_2 = {
    "full": {},
    "no_instance": {"loss.aug": OFF, "loss.near": OFF, "loss.intra": OFF, "loss.inter": OFF},
    "no_graph": {"loss.graph": OFF},
    "no_aug": {"loss.aug": OFF},
    "no_near": {"loss.near": OFF},
    "no_intra": {"loss.intra": OFF},
    "no_inter": {"loss.inter": OFF},
}
CCES_TABLE_4 = {  # crop × where the support set's neighbour replaces view 1
    f"{crop_name}_{nn_name}": {
        **({"crop": "random"} if crop_name == "rcrop" else {}),
        **nn,
    }
    for crop_name in ("rcrop", "ccrop")
    for nn_name, nn in {
        "none": {"nn.instance": OFF, "nn.cluster": OFF},
        "single1": {"nn.cluster": OFF},  # NN(single1): the instance loss only
        "single2": {"nn.instance": OFF},  # NN(single2): the cluster loss only
        "double": {},
    }.items()
}
GCC_TABLES_2_3_6 = {
    "full": {},
    "no_agc_graph": {"agc.use_graph": OFF},  # RGC ✓, AGC –: 0.809 on CIFAR-10
    "no_rgc_graph": {"rgc.use_graph": OFF},  # RGC –, AGC ✓: 0.825
    "no_graph": {"rgc.use_graph": OFF, "agc.use_graph": OFF},  # 0.752
    "no_cr": {"loss.cr": OFF},  # Table 3
    "multi_positive": {"rgc.form": "multi_positive"},  # Table 6
}
GHDCC_COMPONENTS = {
    "full": {},
    "concatenated": {"graph.mode": "concatenated"},
    "no_interpolation": {"interpolation": OFF},
    "mlp": {"projector": "mlp"},
    "mlp_no_interpolation": {"projector": "mlp", "interpolation": OFF},
    "cc500": {  # CC(500): CC's recipe at GHDCC's 64 px and 500 epochs
        "projector": "mlp",
        "interpolation": OFF,
        "loss.mse": OFF,
        "loss.ce": OFF,
        "batch_size": 256,
        "optim.lr": 3e-4,
        "assign": "argmax_gcn2",
    },
}
NNCC_TABLE_3 = {
    "nncc": {},
    "pretext_kmeans": {"epochs": 0},  # stage 1 only, k-means on z
    "no_augs": {"num_augs": 1},  # T = 1, FINCH on [CHOICE]
    "no_finch": {"finch.enabled": OFF},  # T = 9 without relations
}

ROWS = {
    "gacl_loss_ablation": ("full", GACL_TABLE_2),
    "gacl_loss_ablation_fashion_mnist": ("full", GACL_TABLE_2),
    "cces_crop_nn": ("ccrop_double", CCES_TABLE_4),
    "cces_crop_nn_fashion_mnist": ("ccrop_double", CCES_TABLE_4),
    "gcc_graph_ablation": ("full", GCC_TABLES_2_3_6),
    "gcc_graph_ablation_fashion_mnist": ("full", GCC_TABLES_2_3_6),
    "gcc_self_label": ("gcc", {"gcc": {}, "gcc_self_label": {"self_label.enabled": True}}),
    "ghdcc_components": ("full", GHDCC_COMPONENTS),
    "ghdcc_components_fashion_mnist": ("full", GHDCC_COMPONENTS),
    "nncc_mining": ("nncc", NNCC_TABLE_3),
    "nncc_mining_fashion_mnist": ("nncc", NNCC_TABLE_3),
    # the CPU proxy suite: each method's principal ablation row beside its full model
    "proxy/cc": ("full", {"full": {}, "no_cluster": {"loss.cluster": OFF, "loss.entropy": OFF}}),
    "proxy/gacl": ("full", {k: GACL_TABLE_2[k] for k in ("full", "no_aug", "no_graph")}),
    "proxy/gcc": ("full", {k: GCC_TABLES_2_3_6[k] for k in ("full", "no_graph")}),
    "proxy/cces": ("full", {"full": {}, "rcrop_none": CCES_TABLE_4["rcrop_none"]}),
    "proxy/ghdcc": ("full", {k: GHDCC_COMPONENTS[k] for k in ("full", "mlp", "no_interpolation")}),
    "proxy/nncc": ("nncc", {k: NNCC_TABLE_3[k] for k in ("nncc", "no_finch")}),
}


def _configs(study):
    """The resolved configuration of each variant (its first trial), flattened."""
    configs = {}
    for trial in expand(study):
        if trial.variant not in study.baselines:
            configs.setdefault(trial.variant, trial.method_config().flat())
    return configs


def test_the_proxy_suite_carries_both_baselines_and_enough_seeds_for_a_paired_test():
    for path in sorted((STUDIES / "proxy").glob("*.yaml")):
        study = load_study(path)
        assert study.baselines == ["pixels", "untrained"], path.name
        assert len(study.seeds) >= 3 and study.analysis.test == "ttest", path.name
        assert {d.name for d in study.datasets} == {"fashion_mnist"}
        trials = expand(study)
        assert {t.method_config().backbone for t in trials if t.variant != "pixels"} == {"cnn4"}


@pytest.mark.parametrize("name", sorted(ROWS))
def test_each_row_differs_from_the_full_model_by_exactly_the_papers_switches(name):
    full, rows = ROWS[name]
    configs = _configs(load_study(STUDIES / f"{name}.yaml"))
    assert set(configs) == set(rows)
    for variant, switches in rows.items():
        differing = {
            key: value for key, value in configs[variant].items() if configs[full][key] != value
        }
        assert differing == switches, variant


def test_gacl_table_3_sweeps_k_alone():
    configs = _configs(load_study(STUDIES / "gacl_knn.yaml"))
    assert sorted(c["knn_k"] for c in configs.values()) == [1, 3, 5, 8, 12]
    baseline = configs["k8"]
    for config in configs.values():
        assert {k for k, v in config.items() if baseline[k] != v} <= {"knn_k"}


def test_cces_temperature_sweeps_one_temperature_at_the_others_default():
    trials = expand(load_study(STUDIES / "cces_temperature.yaml"))
    grid = [i / 10 for i in range(1, 11)]
    by_variant = {}
    for trial in trials:
        config = trial.method_config()
        by_variant.setdefault(trial.variant, set()).add((config.tau_instance, config.tau_cluster))
    assert by_variant["tau_r_sweep"] == {(t, 1.0) for t in grid}  # Fig. 5: τ_R at τ_C = 1
    assert by_variant["tau_c_sweep"] == {(0.2, t) for t in grid}  # Fig. 6: τ_C at τ_R = 0.2


def test_gcc_table_5_trains_rgc_alone_and_clusters_z():
    configs = _configs(load_study(STUDIES / "gcc_feature_quality.yaml"))
    expected = {
        "simclr_sc": (False, "spectral"),
        "gcc_sc": (True, "spectral"),
        "simclr_kmeans": (False, "kmeans"),
        "gcc_kmeans": (True, "kmeans"),
    }
    for variant, (graph, rule) in expected.items():
        config = configs[variant]
        assert (config["loss.rgc"], config["loss.agc"], config["loss.cr"]) == (True, OFF, OFF)
        assert (config["rgc.use_graph"], config["eval_assign"]) == (graph, rule), variant


@pytest.mark.parametrize(
    ("name", "key", "grid"),
    [
        ("ghdcc_lambda", "interp_lambda", [0.5, 0.6, 0.7, 0.8, 0.9]),  # Fig. 6
        ("nncc_num_augs", "num_augs", list(range(1, 10))),  # Fig. 4, FINCH on
    ],
)
def test_figure_sweeps_cover_the_papers_grid(name, key, grid):
    trials = expand(load_study(STUDIES / f"{name}.yaml"))
    configs = [t.method_config().flat() for t in trials]
    assert sorted({c[key] for c in configs}) == grid
    others = [{k: v for k, v in c.items() if k != key} for c in configs]
    assert all(o == others[0] for o in others)  # nothing else moves
    if name == "nncc_num_augs":
        assert configs[0]["finch.enabled"] is True


@pytest.mark.parametrize(
    ("name", "variant", "dataset", "numbers"),
    [
        ("gacl_loss_ablation", "full", "cifar10", {"nmi": 0.793, "acc": 0.875, "ari": 0.753}),
        ("gacl_loss_ablation", "no_aug", "cifar10", {"nmi": 0.314, "acc": 0.462, "ari": 0.338}),
        ("cces_crop_nn", "ccrop_double", "cifar10", {"acc": 0.812, "nmi": 0.724, "ari": 0.694}),
        ("cces_crop_nn", "rcrop_none", "tiny_imagenet", {"acc": 0.142, "nmi": 0.340, "ari": 0.071}),
        ("gcc_graph_ablation", "no_graph", "cifar10", {"acc": 0.752}),
        ("gcc_graph_ablation", "no_cr", "imagenet10", {"acc": 0.828}),
        ("ghdcc_components", "full", "imagenet10", {"acc": 0.913}),
        ("ghdcc_components", "concatenated", "imagenet10", {"acc": 0.812}),
        ("nncc_mining", "no_finch", "cifar10", {"acc": 0.809, "nmi": 0.718}),
        ("nncc_mining", "pretext_kmeans", "cifar10", {"acc": 0.659, "nmi": 0.598}),
    ],
)
def test_reference_numbers_are_the_papers(name, variant, dataset, numbers):
    reference = load_study(STUDIES / f"{name}.yaml").reference[variant][dataset]
    assert {k: reference[k] for k in numbers} == numbers
