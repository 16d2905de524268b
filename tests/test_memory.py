"""Memory accounting against numbers worked out by hand (docs/method.md §10)."""

import pytest

from frozen_slt.method.freezing import LayerFreezeCounts
from frozen_slt.method.memory import account_memory

# Conv6 on 3x32x32 / 10 classes with f = 0.7, k = 0.5, proportional split (p = r = 0.35), uniform rule:
# every layer prunes ⌊0.35·n⌋ and locks ⌊0.35·n⌋ of its n weights.
CONV6 = [1728, 36864, 73728, 147456, 294912, 589824, 1048576, 65536, 2560]
FLOOR_035 = [604, 12902, 25804, 51609, 103219, 206438, 367001, 22937, 896]  # ⌊0.35·n⌋, by hand


def conv6_counts():
    return [LayerFreezeCounts(f"l{i}", (n,), n, f, f) for i, (n, f) in enumerate(zip(CONV6, FLOOR_035))]


def test_conv6_at_seventy_percent_freezing():
    report = account_memory(conv6_counts(), batchnorm_stat_values=0)
    assert report.total_weights == 2_261_184
    assert report.free_weights == 2_261_184 - 2 * 791_410 == 678_364
    assert report.mask_bits == 678_364
    assert report.seed_bits == 128  # weight seed + freeze seed
    assert report.ticket_bits == 678_492
    assert report.dense_source_ticket_bits == 2_261_248  # N + one 64-bit seed
    assert report.weight_trained_bits == 72_357_888  # 32·N
    assert report.compression_vs_dense_source == pytest.approx(2_261_248 / 678_492)
    assert 3.3 < report.compression_vs_dense_source < 3.34  # ≈ 1/(1 − 0.7)
    assert report.compression_vs_weight_trained == pytest.approx(72_357_888 / 678_492)


def test_dense_source_needs_one_seed_and_batchnorm_is_separate():
    counts = [LayerFreezeCounts("a", (10, 10), 100, 0, 0), LayerFreezeCounts("b", (5, 10), 50, 0, 0)]
    report = account_memory(counts, batchnorm_stat_values=30)
    assert report.ticket_bits == 150 + 64 == report.dense_source_ticket_bits
    assert report.batchnorm_stats_bits == 30 * 32
    assert report.bits_summary() == {
        "ticket": 214, "mask": 150, "seeds": 64, "batchnorm_stats": 960,
        "dense_source_ticket": 214, "weight_trained": 4800,
    }


def test_randomly_pruned_source_counts_only_unpruned_weights():
    counts = [LayerFreezeCounts("a", (1000,), 1000, 400, 0)]
    report = account_memory(counts)
    assert report.ticket_bits == 600 + 128
