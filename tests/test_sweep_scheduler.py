"""MO-ASHA without Ray running: decisions on rung tables worked out by hand, the family split, the
baseline, ties, and the decision log across a restart (what Optuna is told: test_sweep_strategies)."""

import json
from types import SimpleNamespace

import pytest

from sweeps.scheduler import MultiObjectiveAsha, decide, read_decisions, stop_records
from sweeps.spec import SweepConfigError, load_sweep_spec, rung_epochs

CONTINUE, STOP = "CONTINUE", "STOP"


def test_rungs_lie_at_grace_times_eta_powers_below_the_budget():
    assert rung_epochs(1, 3, 6) == (1, 3)
    assert rung_epochs(1, 2, 6) == (1, 2, 4)
    assert rung_epochs(10, 3, 100) == (10, 30, 90)
    assert rung_epochs(2, 1.5, 10) == (2, 3, 5, 7)  # 4.5 and 6.75: the first epochs at or past them
    assert rung_epochs(1, 1.1, 4) == (1, 2, 3)  # 1.1 and 1.21 both fall on epoch 2: counted once
    assert rung_epochs(6, 3, 6) == ()


def test_decide_keeps_the_best_ceil_n_over_eta_of_a_table():
    table = [{"trial_id": "a", "bits": 100, "accuracy": 0.5}, {"trial_id": "b", "bits": 100, "accuracy": 0.6},
             {"trial_id": "c", "bits": 10, "accuracy": 0.3}, {"trial_id": "d", "bits": 100, "accuracy": 0.55}]
    # ranks: b and c form the front, d is dominated by b, a by b and d; keep ceil(4/3) = 2. Against (200 bits, 0),
    # c adds (2 - 1)(.3) = .3 and b (log10 200 - 2)(.6 - .3) = .09: c goes first
    assert decide(table, "c", 3)[0] and decide(table, "b", 3)[0]
    go_on, reason = decide(table, "d", 3)
    assert not go_on and reason.startswith("not among the best 2 of 4 trials of its family at this rung (placed 3")
    assert decide(table, "d", 1.5)[0] is True  # ceil(4/1.5) = 3 go on
    assert decide(table[:1], "a", 3)[0]  # fewer trials than η: the first at a rung always goes on


class FakeController:
    """What the scheduler uses of Ray's TuneController: its trials, and stopping one."""

    def __init__(self, trials):
        self.trials, self.stopped = trials, []

    def get_trials(self):
        return self.trials

    def stop_trial(self, trial):
        self.stopped.append(trial.trial_id)
        trial.status = "TERMINATED"


def trial(trial_id, status="RUNNING"):
    return SimpleNamespace(trial_id=trial_id, status=status)


def result(epoch, family, bits, accuracy):
    return {"epoch": epoch, "family": family, "ticket_bits": bits, "best_val_accuracy": accuracy}


def test_rung_table_by_hand_with_families_ties_and_the_baseline(tmp_path):
    path = tmp_path / "s.scheduler.json"
    scheduler = MultiObjectiveAsha((1, 3), 3, str(path))
    ask = lambda name, *args: scheduler.on_trial_result(None, trial(name), result(*args))  # noqa: E731
    assert ask("A", 0, "frozen", 100, 0.1) == CONTINUE  # before the first rung: nothing recorded
    assert ask("A", 1, "frozen", 100, 0.50) == CONTINUE  # alone at the rung
    assert ask("B", 1, "frozen", 100, 0.60) == CONTINUE  # dominates A: first of 2, keep 1
    assert ask("C", 1, "frozen", 100, 0.55) == STOP  # rank 1 of B, A, C: not in the best 1 of 3
    assert ask("D", 1, "dense", 1000, 0.20) == CONTINUE  # dominated by every frozen trial, but alone in its family
    assert ask("E", 1, "frozen", 10, 0.30) == CONTINUE  # smaller than all: on the front with B; keep 2 of 4
    # F ties E exactly: same rank, and each adds no hypervolume the other does not, so B (which adds some)
    # comes first, then E (recorded earlier), then F: third, for a keep of 2
    assert ask("F", 1, "frozen", 10, 0.30) == STOP
    assert ask("W", 1, "weight_trained", 5000, 0.10) == CONTINUE  # the baseline: never recorded, never stopped
    assert ask("W", 5, "weight_trained", 5000, 0.10) == CONTINUE
    assert ask("B", 2, "frozen", 100, 0.7) == CONTINUE
    assert ask("B", 3, "frozen", 100, 0.8) == CONTINUE  # alone at the second rung
    log = read_decisions(path)
    assert [(e["trial_id"], e["rung"], e["go_on"]) for e in log] == [
        ("A", 1, True), ("B", 1, True), ("C", 1, False), ("D", 1, True), ("E", 1, True), ("F", 1, False), ("B", 3, True)]
    assert set(stop_records(path)) == {"C", "F"} and stop_records(path)["F"]["epoch"] == 1
    assert "placed 3" in stop_records(path)["F"]["reason"]


def test_a_restarted_scheduler_continues_from_its_log_and_never_decides_twice(tmp_path):
    path = tmp_path / "s.scheduler.json"
    first = MultiObjectiveAsha((1, 3), 3, str(path))
    for name, accuracy in (("A", 0.5), ("B", 0.6), ("C", 0.55)):
        first.on_trial_result(None, trial(name), result(1, "pruned", 100, accuracy))
    before = path.read_text()
    # the driver is killed; Ray restores the scheduler as it was pickled when the sweep started (no log)
    import pickle
    again = pickle.loads(pickle.dumps(MultiObjectiveAsha((1, 3), 3, str(path))))
    replay = lambda name, *args: again.on_trial_result(None, trial(name), result(*args))  # noqa: E731
    assert replay("B", 1, "pruned", 100, 0.1) == CONTINUE  # a replayed epoch: the decision taken, not a new one
    assert replay("C", 1, "pruned", 100, 0.9) == STOP
    assert replay("C", 2, "pruned", 100, 0.9) == STOP  # a stopped trial stays stopped
    assert path.read_text() == before
    assert replay("D", 1, "pruned", 100, 0.4) == STOP  # ranked against A, B, C recorded before the kill
    assert len(read_decisions(path)) == 4
    # a stopped trial restored PENDING is ended before it trains again; the others run as FIFO would
    controller = FakeController([trial("C", "PENDING"), trial("A", "PENDING"), trial("B", "RUNNING")])
    chosen = again.choose_trial_to_run(controller)
    assert controller.stopped == ["C"] and chosen.trial_id == "A"
    assert "1, 3" in again.debug_string() and "2 trials stopped" in again.debug_string()


def test_the_log_is_written_before_the_decision_is_returned(tmp_path):
    path = tmp_path / "s.scheduler.json"
    scheduler = MultiObjectiveAsha((2,), 2, str(path))
    scheduler.on_trial_result(None, trial("A"), result(2, "frozen", 10, 0.9))
    assert scheduler.on_trial_result(None, trial("B"), result(2, "frozen", 10, 0.1)) == STOP
    saved = json.loads(path.read_text())
    assert saved["rungs"] == [2] and saved["reduction_factor"] == 2 and saved["decisions"][-1]["trial_id"] == "B"


@pytest.mark.parametrize("text, needle", [
    ('[scheduler]\nkind = "asha"\n', "unknown [scheduler] kind 'asha'; valid: fifo, mo-asha"),
    ('[scheduler]\ngrace_epochs = 0\n', "[scheduler] grace_epochs must be an integer >= 1, got 0"),
    ('[scheduler]\nreduction_factor = 1\n', "[scheduler] reduction_factor must be a finite number > 1, got 1"),
    ('[scheduler]\nkind = "mo-asha"\ngrace_epochs = 6\n',
     "[scheduler] grace_epochs = 6 leaves no MO-ASHA rung below the 6 training epochs"),
    ('[scheduler]\neta = 3\n', "unknown keys ['eta'] in [scheduler]"),
])
def test_bad_scheduler_settings(tmp_path, text, needle):
    path = tmp_path / "bad.toml"
    path.write_text('[experiment]\nmodel = "conv2"\ndataset = "digits"\nepochs = 6\n' + text)
    with pytest.raises(SweepConfigError) as error:
        load_sweep_spec(path)
    assert needle in str(error.value)


def test_the_scheduler_is_part_of_a_sweeps_identity_only_when_it_stops_trials(tmp_path):
    base = '[experiment]\nmodel = "conv2"\ndataset = "digits"\nepochs = 6\n[scheduler]\n'
    names = {}
    for key, text in {"fifo": 'kind = "fifo"\n', "fifo-eta": 'kind = "fifo"\nreduction_factor = 2\n',
                      "asha": 'kind = "mo-asha"\n', "asha-eta": 'kind = "mo-asha"\nreduction_factor = 2\n'}.items():
        (tmp_path / "s.toml").write_text(base + text)
        names[key] = load_sweep_spec(tmp_path / "s.toml").run_name
    assert names["fifo"] == names["fifo-eta"]
    assert len({names["fifo"], names["asha"], names["asha-eta"]}) == 3
