"""The way to a sweep's pages in the MLflow 3 UI (whose experiment page opens on the GenAI overview)."""

from sweeps.tracking import browse_instructions


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
