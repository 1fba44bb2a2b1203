"""Every MLflow name ``ablate`` writes or reads back, spelled once.

The writer (:mod:`ablate.tracking`), ``ablate status`` (:mod:`ablate.status`) and the
analysis (:mod:`analysis.loading`) import these names; ``docs/tracking.md`` lists each one
(a test compares the two).

One experiment per study; one run per study (tag ``ablate.role`` = ``study``) and, nested
under it, one run per trial.

============================== ======== ==========================================================
name                           kind     meaning
============================== ======== ==========================================================
``ablate.role``                tag      ``study`` on the study's parent run
``ablate.study``               tag      the study's name (parent and trial runs)
``ablate.variant``             tag      the trial's variant (ablation row) or baseline row
``ablate.dataset``             tag      the trial's data set label
``ablate.seed``                tag      the trial's seed
``ablate.trial_id``            tag      Tune's trial id: finds a resumed trial's run again
``ablate.trial``               tag      the trial's name (``<variant>-<data set>-s<seed>``...)
``ablate.device``              tag      the device the trial trained on
``ablate.node``                tag      the Ray node it ran on
``ablate.assignment``          tag      how images were assigned (argmax, k-means, spectral)
``ablate.data_parallel``       tag      what several workers computed (multi-worker trials)
``ablate.stage_name``          tag      the stage of the last report (``status`` shows it)
``ablate.stage_cache.<stage>`` tag      ``reused <key>`` / ``published <key>`` of a shared stage
``ablate.reused_from``         tag      ``<study>/<trial> (publisher's claim)`` that was replayed
``ablate.reuse_refused``       tag      the trial-store folder refused for replay, and why
``ablate.data_sha256``         tag      the identity of the data the trial read (reports compare)
``ablate.data_root``           tag      the data root it was read from (resolved)
``ablate.early_stopped``       tag      ``true`` when the scheduler stopped the trial early
``ablate.error``               tag      a failed trial's last error line
``ablate.selection``           tag      ``labels``, ``label-free`` or ``none``: what picked trials
``ablate.selection_metric``    tag      the metric that picked or stopped trials
``ablate.git_dirty``           tag      ``true`` when the checkout had uncommitted changes
``ablate.git_commit``          tag      ``unknown (not a git checkout)`` when there is no commit
``mlflow.source.git.commit``   tag      the commit of the code that ran
``ablate.torch``               tag      the torch release (also ``ablate.ray``, ``ablate.mlflow``)
``ablate.ray``                 tag      the Ray release
``ablate.mlflow``              tag      the MLflow release
``method``                     param    the method (also every resolved config key, flattened)
``dataset``                    param    the data set label
``seed``                       param    the seed
``variant``                    param    the variant
``epoch``                      metric   epochs completed (step = epoch for every metric)
``acc`` ``nmi`` ``ari``        metric   scores on evaluation epochs (read the labels)
``final_<m>``                  metric   at the end: ``final_acc/nmi/ari/loss``
``config.yaml``                artifact the resolved configuration
``assignments.npy``            artifact the final cluster of every image
============================== ======== ==========================================================

The training loop's other per-epoch metrics (losses, throughput, memory, label-free scores)
are listed with their meaning in ``docs/tracking.md``; ``ablate`` reads none of them back by
name except through :data:`SCORES`.
"""

from __future__ import annotations

PREFIX = "ablate."

# -- tags of the study's parent run
ROLE = "ablate.role"
ROLE_STUDY = "study"
STUDY = "ablate.study"

# -- tags of a trial's run, set when it starts
VARIANT = "ablate.variant"
DATASET = "ablate.dataset"
SEED = "ablate.seed"
TRIAL_ID = "ablate.trial_id"
TRIAL = "ablate.trial"

# -- tags from a trial's reports: ``ablate.<key>`` for each of these report keys
DEVICE = "ablate.device"
NODE = "ablate.node"
ASSIGNMENT = "ablate.assignment"
DATA_PARALLEL = "ablate.data_parallel"
STAGE_NAME = "ablate.stage_name"
REUSED_FROM = "ablate.reused_from"
REUSE_REFUSED = "ablate.reuse_refused"
DATA_SHA256 = "ablate.data_sha256"  # the identity of the data the trial read
DATA_ROOT = "ablate.data_root"  # the data root it read it from
REPORTED_TAGS = (
    DEVICE,
    NODE,
    ASSIGNMENT,
    DATA_PARALLEL,
    STAGE_NAME,
    REUSED_FROM,
    REUSE_REFUSED,
    DATA_SHA256,
    DATA_ROOT,
)
#: A report key ``stage_cache.<stage>`` becomes the tag ``ablate.stage_cache.<stage>``.
STAGE_NOTE = "stage_cache."

# -- tags set when a trial ends, or of the whole study
EARLY_STOPPED = "ablate.early_stopped"
ERROR = "ablate.error"
SELECTION = "ablate.selection"
SELECTION_METRIC = "ablate.selection_metric"
GIT_DIRTY = "ablate.git_dirty"
GIT_COMMIT = "ablate.git_commit"
MLFLOW_GIT_COMMIT = "mlflow.source.git.commit"
TORCH = "ablate.torch"
RAY = "ablate.ray"
MLFLOW = "ablate.mlflow"

# -- params beside the flattened resolved config
PARAM_METHOD = "method"
PARAM_DATASET = "dataset"
PARAM_SEED = "seed"
PARAM_VARIANT = "variant"
#: The variant values of a study's baseline rows (``ablate.variant`` and ``variant``): k-means on
#: the raw pixels, and the study's method untrained. Reports print them apart from the ablation.
BASELINE_ROWS = ("pixels", "untrained")

# -- metrics read back by name
EPOCH = "epoch"
SCORES = ("acc", "nmi", "ari")
FINAL = "final_"  # final_<score>, final_loss: logged once, at the trial's end
FINAL_OF = (*SCORES, "loss")

# -- artifacts
CONFIG_ARTIFACT = "config.yaml"
ASSIGNMENTS_ARTIFACT = "assignments.npy"


def reported_tag(key: str) -> str:
    """The tag a trial's report key becomes (``reused_from`` -> ``ablate.reused_from``)."""
    return PREFIX + key


def report_key(tag: str) -> str:
    """The report key behind a tag of :data:`REPORTED_TAGS`."""
    return tag.removeprefix(PREFIX)


#: Every tag name, for the test that compares this module with docs/tracking.md.
TAGS = (
    ROLE,
    STUDY,
    VARIANT,
    DATASET,
    SEED,
    TRIAL_ID,
    TRIAL,
    *REPORTED_TAGS,
    PREFIX + STAGE_NOTE + "<stage>",
    EARLY_STOPPED,
    ERROR,
    SELECTION,
    SELECTION_METRIC,
    GIT_DIRTY,
    GIT_COMMIT,
    MLFLOW_GIT_COMMIT,
    TORCH,
    RAY,
    MLFLOW,
)
PARAMS = (PARAM_METHOD, PARAM_DATASET, PARAM_SEED, PARAM_VARIANT)
METRICS = (EPOCH, *SCORES, *(FINAL + name for name in FINAL_OF))
ARTIFACTS = (CONFIG_ARTIFACT, ASSIGNMENTS_ARTIFACT)


def default_control(variants: list[str]) -> str:
    """The row ablation tables compare against: a variant named ``full``, else the first."""
    return "full" if "full" in variants else variants[0]
