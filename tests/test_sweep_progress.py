"""The sweep's progress lines name the search point and count finished trials correctly."""

import io
from types import SimpleNamespace

from sweeps.progress import ProgressCallback, describe_point


def test_points_are_described_by_family():
    assert describe_point({"point": {"family": "weight_trained", "seed": 0}}) == "weight-trained dense baseline"
    assert describe_point({"point": {"family": "dense", "sparsity": 0.5}}) == "dense  k=0.5"
    assert describe_point({"family": "pruned", "sparsity": 0.7, "freeze_ratio": 0.25, "lock_share": 0.0}) == "pruned k=0.7 f=0.25"
    frozen = {"family": "frozen", "sparsity": 0.3, "freeze_ratio": 0.6}
    assert describe_point({"point": {**frozen, "lock_share": "proportional"}}) == "frozen k=0.3 f=0.6 s=0.7 (1-k)"
    assert describe_point({**frozen, "lock_share": 0.123456}) == "frozen k=0.3 f=0.6 s=0.123"
    seeded = {"point": {"family": "dense", "sparsity": 0.5, "seed": 1}, "seeds": [0, 1]}  # several seeds: each is named
    assert describe_point(seeded) == "dense  k=0.5 seed=1"
    assert describe_point({**seeded, "seeds": [1]}) == "dense  k=0.5"


def trial(trial_id, status, **result):
    return SimpleNamespace(trial_id=trial_id, status=status, config={"point": {"family": "dense", "sparsity": 0.5}},
                           last_result=result)


def test_completion_lines_count_the_trial_that_just_finished():
    stream = io.StringIO()
    callback = ProgressCallback(stream)
    callback.setup(num_samples=1, total_num_samples=3)
    first = trial("a", "RUNNING", best_val_accuracy=0.5, best_test_accuracy=0.25, ticket_bits=1234567, time_total_s=75.0)
    others = [trial("b", "TERMINATED"), trial("c", "PENDING")]
    callback.on_trial_complete(0, [first, *others], first)
    line = stream.getvalue().strip()
    assert line.startswith("[2/3] dense  k=0.5")
    assert "val  50.00%" in line and "test  25.00%" in line and "1,234,567 bits" in line and line.endswith("1m15s")


def test_status_lines_are_rate_limited():
    stream = io.StringIO()
    callback = ProgressCallback(stream)
    callback.setup(total_num_samples=2)
    trials = [trial("a", "TERMINATED"), trial("b", "ERROR")]
    callback.on_step(1, trials)
    assert stream.getvalue() == ""
    callback.last_status -= 31
    callback.on_step(2, trials)
    assert stream.getvalue().startswith("... 1/2 finished, 0 running, 1 failed, ")


def test_a_trial_reported_by_an_earlier_driver_gets_no_second_line():
    stream = io.StringIO()
    callback = ProgressCallback(stream, reported_before=lambda trial_id: trial_id == "a")
    callback.setup(total_num_samples=2)
    again, new = trial("a", "RUNNING", best_val_accuracy=0.5), trial("b", "RUNNING", best_val_accuracy=0.5)
    callback.on_trial_complete(0, [again, new], again)  # the resumed Ray ran it to its end again
    assert stream.getvalue() == ""
    callback.on_trial_complete(0, [again, new], new)
    assert stream.getvalue().startswith("[1/2] dense  k=0.5")
