"""The demo's tiny classifier: trained from the shards, reported next to chance."""

from __future__ import annotations

from collections import Counter

from nishard.stream.classifier import train_classifier
from tests.stream.conftest import decoded


def test_classifier_trains_and_reports_accuracy_next_to_chance(shards):
    result = train_classifier(shards, key="connectivity", label="diagnosis", epochs=40)
    test = [s.meta["diagnosis"] for s in decoded(shards, "test").values()]
    train = [s.meta["diagnosis"] for s in decoded(shards, "train").values()]
    assert result["chance"] == max(Counter(test).values()) / len(test)
    assert (result["n_train"], result["n_test"]) == (len(train), len(test)) == (12, 4)
    assert result["classes"] == sorted(set(train)) == ["control", "patient"]
    assert result["features"] == 7 * 6 // 2  # the connectivity matrix above its diagonal
    assert result["test_accuracy"] * 4 in {0, 1, 2, 3, 4}
    # 21 features for 12 samples: a trained linear model separates the training split.
    assert result["train_accuracy"] == 1.0 and result["final_loss"] < 0.5
    # Same seed, same model; the TFRecord shards hold the same samples.
    assert train_classifier(shards, epochs=40, format="tfrecord") == result
