"""Default settings of a run of one model on one dataset: the recipes of docs/method.md §9, as plain data.

A config starts from the field defaults (the CIFAR-10 recipe: SGD lr 0.1, momentum 0.9, wd 1e-4, cosine,
100 epochs, batch 128, ERK, kaiming-uniform weights), then the dataset's recipe
(:attr:`frozen_slt.data.DatasetEntry.recipe`), then the (dataset, model) recipe of :data:`MODEL_RECIPES`,
then the user's settings; each later one overrides the earlier ones.
"""

from __future__ import annotations

#: Settings that one model needs on one dataset, beyond the dataset's recipe.
MODEL_RECIPES: dict[tuple[str, str], tuple[tuple[str, object], ...]] = {
    # The paper's text trains Conv6 on CIFAR-10 with lr 0.01 and ResNet-18 with 0.1 (the default); the
    # authors' configs use 0.1 for both, which `--lr 0.1` selects (docs/method.md §9).
    ("cifar10", "conv6"): (("lr", 0.01),),
}


def default_settings(dataset: str, model: str) -> dict[str, object]:
    """The settings a run of ``model`` on ``dataset`` starts from, before the user's: the dataset's recipe
    updated by the (dataset, model) recipe. A dataset by import path has no recipe, a PyG class the graph
    recipe (:func:`frozen_slt.data.dataset_recipe`)."""
    from ..data import dataset_recipe

    return {**dict(dataset_recipe(dataset)), **dict(MODEL_RECIPES.get((dataset, model), ()))}
