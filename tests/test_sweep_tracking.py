"""The way to a sweep's pages in the MLflow 3 UI (whose experiment page opens on the GenAI overview); a resumed
driver records each trial's completion once."""

from mlflow.tracking import MlflowClient

from sweeps.tracking import SweepTracker, TrialLogger, browse_instructions


def test_a_local_store_is_served_on_loopback_and_its_runs_and_fronts_are_linked():
    lines = browse_instructions("sqlite:////data/mlflow.db", "7", "abc123", "pareto_fronts.png")
    assert lines == [
        "mlflow ui --backend-store-uri sqlite:////data/mlflow.db --host 127.0.0.1 --port 5000",
        "runs:   http://127.0.0.1:5000/#/experiments/7/runs?workflowType=machine_learning",
        "fronts: http://127.0.0.1:5000/#/experiments/7/runs/abc123/artifacts/pareto_fronts.png?workflowType=machine_learning",
    ]


def test_a_tracking_server_is_linked_directly():
    lines = browse_instructions("http://mlflow.internal:8080/", "2", "r1")
    assert lines == ["runs:   http://mlflow.internal:8080/#/experiments/2/runs?workflowType=machine_learning",
                     "fronts: http://mlflow.internal:8080/#/experiments/2/runs/r1/artifacts?workflowType=machine_learning"]


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
