"""A tiny PyTorch classifier trained from shards: the demo's end-to-end check.

Logistic regression (one linear layer, softmax, weight decay) on one key of each sample
(a connectivity matrix gives its upper triangle), with the label from each sample's
JSON metadata. The training split streams through ``nishard.stream.open(...).torch()``,
shuffled anew each epoch; features are standardised with the training split's mean and
std.
Accuracy on the test split is reported next to chance, the fraction of its most frequent
class.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np


def train_classifier(
    folder: str | Path,
    key: str = "connectivity",
    label: str = "diagnosis",
    *,
    epochs: int = 100,
    seed: int = 0,
    batch_size: int = 8,
    learning_rate: float = 0.01,
    weight_decay: float = 0.01,
    train: str = "train",
    test: str = "test",
    format: str | None = None,
) -> dict:
    """Train a linear classifier of ``label`` from ``key`` and test it.

    Parameters
    ----------
    folder : str or Path
        A shard folder with a ``train`` and a ``test`` split (names: ``train``, ``test``).
    key : str
        The features: flattened; a square matrix (connectivity) gives its entries above
        the diagonal.
    label : str
        The metadata field to predict (a class: string or integer).
    epochs, batch_size, learning_rate, weight_decay : number
        Adam on the cross-entropy; ``weight_decay`` is the L2 penalty.
    seed : int
        Initial weights and the order of the training samples.
    train, test : str
        The splits to train and test on.
    format : str, optional
        ``webdataset`` or ``tfrecord`` shards (default: tar when present).

    Returns
    -------
    dict
        ``test_accuracy``, ``chance`` (the test split's majority-class fraction),
        ``train_accuracy``, ``n_train``, ``n_test``, ``classes``, ``features``,
        ``epochs``, ``final_loss``.
    """
    import torch
    from torch.utils.data import DataLoader

    from .. import stream

    def split_data(name: str) -> tuple[torch.Tensor, list]:
        features, labels = [], []
        # Whole splits in file order: the model sees every sample once per epoch below.
        batches = stream.open(folder, name, format=format).keys(key).batch(64)
        for batch in batches.fields(meta=[label]).torch(threads=0):
            features.append(_features(batch[key]))
            labels += _labels(batch[label])
        return torch.cat(features), labels

    x_train, y_train = split_data(train)
    x_test, y_test = split_data(test)
    classes = sorted(set(y_train), key=str)
    mean, std = x_train.mean(0), x_train.std(0, unbiased=False)
    std = torch.where(std > 0, std, torch.ones_like(std))

    torch.manual_seed(seed)
    model = torch.nn.Linear(x_train.shape[1], len(classes))
    optimizer = torch.optim.Adam(model.parameters(), lr=learning_rate, weight_decay=weight_decay)
    # threads=0: a tiny split, read in the loop; reader threads would cost more to start.
    composed = stream.open(folder, train, format=format).keys(key).batch(batch_size)
    data = composed.shuffle(seed=seed, buffer=1000).fields(meta=[label]).torch(threads=0)
    loss = torch.tensor(float("nan"))
    for epoch in range(epochs):
        data.set_epoch(epoch)
        for batch in DataLoader(data, batch_size=None):
            x = (_features(batch[key]) - mean) / std
            y = torch.tensor([classes.index(v) for v in _labels(batch[label])])
            loss = torch.nn.functional.cross_entropy(model(x), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()

    def accuracy(x: torch.Tensor, y: list) -> float:
        with torch.no_grad():
            predicted = model((x - mean) / std).argmax(1).tolist()
        return float(np.mean([classes[p] == t for p, t in zip(predicted, y, strict=True)]))

    counts = Counter(y_test)
    return {
        "test_accuracy": accuracy(x_test, y_test),
        "chance": max(counts.values()) / len(y_test),
        "train_accuracy": accuracy(x_train, y_train),
        "n_train": len(y_train),
        "n_test": len(y_test),
        "classes": classes,
        "features": int(x_train.shape[1]),
        "epochs": epochs,
        "final_loss": float(loss.detach()),
    }


def _features(values):
    """One row per sample: a batch of square matrices gives their upper triangles."""
    import torch

    values = values.to(torch.float32)
    if values.ndim == 3 and values.shape[1] == values.shape[2]:
        rows, cols = torch.triu_indices(values.shape[1], values.shape[2], offset=1)
        return values[:, rows, cols]
    return values.reshape(len(values), -1)


def _labels(values) -> list:
    return values.tolist() if hasattr(values, "tolist") else list(values)
