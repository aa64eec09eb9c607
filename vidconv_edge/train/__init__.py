"""Training and evaluation: recipes (YAML), the training loop (DDP, resume), evaluation and prediction."""

from vidconv_edge.train.config import Recipe, load_recipe, recipe_from_dict
from vidconv_edge.train.evaluate import evaluate, predict
from vidconv_edge.train.loop import Trainer, train

__all__ = ["Recipe", "Trainer", "evaluate", "load_recipe", "predict", "recipe_from_dict", "train"]
