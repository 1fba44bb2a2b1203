"""Drivers started at once on a new SQLite store: one creates its tables, the others wait."""

import multiprocessing

from mlflow import MlflowClient

OPENERS = 4


def _open_and_write(uri: str, barrier, name: str, use_lock: bool, errors) -> None:
    from analysis.loading import mlflow_client

    barrier.wait()  # every process imported MLflow: they open the new store together
    try:
        client = mlflow_client(uri) if use_lock else MlflowClient(uri)
        client.create_experiment(name)
    except Exception as error:  # noqa: BLE001 - reported to the test
        errors.put(f"{type(error).__name__}: {str(error).splitlines()[0]}")


def _open_together(uri: str, use_lock: bool) -> list[str]:
    context = multiprocessing.get_context("spawn")
    barrier, errors = context.Barrier(OPENERS), context.Queue()
    processes = [
        context.Process(target=_open_and_write, args=(uri, barrier, f"e{i}", use_lock, errors))
        for i in range(OPENERS)
    ]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=300)
    found = []
    while not errors.empty():
        found.append(errors.get())
    return found


def test_a_new_sqlite_store_opened_by_several_processes_at_once_is_made_once(tmp_path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    assert _open_together(uri, use_lock=True) == []
    names = {e.name for e in MlflowClient(uri).search_experiments()}
    assert names == {"Default", *(f"e{i}" for i in range(OPENERS))}
