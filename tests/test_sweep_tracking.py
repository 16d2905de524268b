"""The way to a sweep's pages in the MLflow 3 UI (whose experiment page opens on the GenAI overview) and to its
Optuna studies in optuna-dashboard; a resumed driver records each trial's completion once; each child run says
where its trial ran and how often it was retried, and the summary counts trials per node."""

from mlflow.tracking import MlflowClient

from sweeps.outcome import SweepOutcome, placement_lines
from sweeps.tracking import (
    SweepTracker,
    TrialLogger,
    browse_instructions,
    dashboard_instructions,
)
from sweeps.trial_runs import retried_trials


def test_a_local_store_is_served_on_loopback_and_its_runs_and_fronts_are_linked():
    lines = browse_instructions("sqlite:////data/mlflow.db", "7", "abc123", "pareto_fronts.png")
    assert lines == [
        "mlflow ui --backend-store-uri sqlite:////data/mlflow.db --host 127.0.0.1 --port 5000",
        "runs:   http://127.0.0.1:5000/#/experiments/7/runs?workflowType=machine_learning",
        "fronts: http://127.0.0.1:5000/#/experiments/7/runs/abc123/artifacts/pareto_fronts.png?workflowType=machine_learning",
        "charts: http://127.0.0.1:5000/#/experiments/7/runs/abc123/model-metrics?workflowType=machine_learning",
    ]


def test_a_tracking_server_is_linked_directly():
    lines = browse_instructions("http://mlflow.internal:8080/", "2", "r1")
    assert lines == ["runs:   http://mlflow.internal:8080/#/experiments/2/runs?workflowType=machine_learning",
                     "fronts: http://mlflow.internal:8080/#/experiments/2/runs/r1/artifacts?workflowType=machine_learning",
                     "charts: http://mlflow.internal:8080/#/experiments/2/runs/r1/model-metrics?workflowType=machine_learning"]


def test_an_optuna_storage_is_served_by_optuna_dashboard_on_loopback():
    assert dashboard_instructions("sqlite:////data/sweep.optuna.db") == [
        "optuna-dashboard sqlite:////data/sweep.optuna.db --host 127.0.0.1 --port 8080",
        "studies: http://127.0.0.1:8080/dashboard"]


def test_a_trial_completed_before_a_kill_is_not_recorded_again_by_the_resumed_driver(tmp_path):
    # The driver was killed just after the trial's child run was completed, before Ray's snapshot held the trial
    # finished: the resumed Ray runs it to its end again, and its completion arrives a second time.
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    parent = SweepTracker(uri, "frozen-slt", tmp_path / "artifacts").open_parent("sweep", {"search": "grid"})
    final = {"epoch": 2, "full_budget": True, "best_val_accuracy": 0.5, "best_test_accuracy": 0.25, "ticket_bits": 100,
             "best_epoch": 1, "val_accuracy": 0.5}
    first = TrialLogger(uri, parent)
    run_id = first.child("t1", "train_trial_00001", {}, {})
    first.log_epoch(run_id, final)
    first.finish_child(run_id, final)
    resumed = TrialLogger(uri, parent)
    assert resumed.child("t1", "train_trial_00001", {}, {}) == run_id and resumed.recorded_before("t1")
    client = MlflowClient(uri)
    assert client.get_run(run_id).info.status == "FINISHED"  # not set RUNNING again
    resumed.log_epoch(run_id, final)
    resumed.finish_child(run_id, final)
    for key in ("final_val_accuracy", "ticket_bits", "best_epoch", "val_accuracy"):
        assert len(client.get_metric_history(run_id, key)) == 1, key
    assert client.get_run(run_id).info.status == "FINISHED"
    # a run that was not complete (killed while the trial trained) is continued and completed as usual
    open_run = first.child("t2", "train_trial_00002", {}, {})
    client.set_terminated(open_run, "KILLED")
    again = TrialLogger(uri, parent)
    assert again.child("t2", "train_trial_00002", {}, {}) == open_run and not again.recorded_before("t2")
    assert client.get_run(open_run).info.status == "RUNNING"
    again.finish_child(open_run, final)
    assert client.get_run(open_run).info.status == "FINISHED" and client.get_run(open_run).data.metrics["ticket_bits"] == 100


def test_child_runs_record_the_nodes_a_trial_ran_on_and_its_retries(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracker = SweepTracker(uri, "frozen-slt", tmp_path / "artifacts")
    parent = tracker.open_parent("sweep", {"search": "grid"})
    logger = TrialLogger(uri, parent)
    run_id = logger.child("t1", "train_trial_00001", {}, {})
    worker = {"epoch": 1, "node_ip": "10.0.0.2", "hostname": "gpu-2"}
    logger.note_node(run_id, worker)
    logger.note_node(run_id, {**worker, "epoch": 2})  # same node: nothing new
    logger.note_retry(run_id, 1, "ActorDiedError: the node died")
    # the retry resumes on another node, reported by a new driver (a resumed sweep) that finds the history
    resumed = TrialLogger(uri, parent)
    assert resumed.child("t1", "train_trial_00001", {}, {}) == run_id
    resumed.note_node(run_id, {"epoch": 2, "node_ip": "10.0.0.1", "hostname": "head"})
    tags = MlflowClient(uri).get_run(run_id).data.tags
    assert tags["ran_on"] == "10.0.0.2 (gpu-2), 10.0.0.1 (head)"
    assert (tags["node_ip"], tags["hostname"]) == ("10.0.0.1", "head")  # the node of its latest result
    untouched = logger.child("t2", "train_trial_00002", {}, {})
    logger.note_node(untouched, {"epoch": 1, "node_ip": "10.0.0.1", "hostname": "head"})
    retried = retried_trials(tracker.child_runs())
    assert retried == {"t1": {"retries": 1, "error": "ActorDiedError: the node died",
                              "ran_on": "10.0.0.2 (gpu-2), 10.0.0.1 (head)"}}


def test_the_summary_counts_trials_per_node_and_names_each_retried_trial():
    outcome = SweepOutcome(nodes={"a": "10.0.0.1 (head)", "b": "10.0.0.2 (gpu-2)", "c": "10.0.0.1 (head)"},
                           retried={"b": {"retries": 2, "error": "ActorDiedError: x", "ran_on": "10.0.0.2 (gpu-2)"}})
    assert placement_lines(outcome) == [
        "trials per node (where each ended): 10.0.0.1 (head) 2, 10.0.0.2 (gpu-2) 1",
        "retried b 2 times from its last checkpoint, ran on 10.0.0.2 (gpu-2); before the last retry: ActorDiedError: x",
    ]
    assert placement_lines(SweepOutcome()) == []
