"""Every recipe config parses and builds its model: a typo in a key fails here, not
an hour into a training run."""

from pathlib import Path

import pytest

from seqrec.config import load_experiment
from seqrec.models.blstm import BiLSTMCTC, ModelConfig

RECIPES = Path(__file__).resolve().parents[1] / "recipes"
CONFIGS = sorted(RECIPES.glob("*/*.toml"))


def test_recipes_have_configs():
    assert len(CONFIGS) >= 5


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_recipe_config_builds_its_model(path):
    cfg = load_experiment(path, {"data.train": "train.jsonl", "train.out_dir": "model"})
    model = BiLSTMCTC(ModelConfig(input_dim=40, vocab_size=12, **cfg.model))
    assert sum(p.numel() for p in model.parameters()) > 0
