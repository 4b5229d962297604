"""The README's "Use it in your own model" examples run as written and do what they say."""

import re

import torch

from tests.conftest import ROOT

README = (ROOT / "README.md").read_text()


def example(name: str) -> dict:
    """Run the ```python block after `<!-- example: name -->` and return its variables."""
    m = re.search(rf"<!-- example: {name} -->\n```python\n(.*?)```", README, re.S)
    assert m, f"README has no example {name!r}"
    scope: dict = {"__name__": "readme_example"}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        torch.manual_seed(0)
        exec(compile(m.group(1), f"README:{name}", "exec"), scope)
    finally:
        torch.set_num_threads(threads)
    return scope


def test_tied_weight_example_trains_through_the_band():
    v = example("tied-weight")
    emb, model, losses = v["emb"], v["model"], v["losses"]
    assert emb.num_in_band > 0 and all(map(lambda x: x == x, losses))
    assert losses[-1] < 0.9 * losses[0]
    seq = v["seqs"][:2, :-1]
    with torch.no_grad():  # the scores use the band items' neighbour averages, not their own vectors
        scores = model(seq)
        h_scores = scores[..., emb.in_band]
        table = emb.weight
        assert torch.equal(table, emb(torch.arange(201)))
        assert not torch.allclose(table[emb.in_band], emb.own_weight[emb.in_band])
    assert h_scores.shape[-1] == emb.num_in_band


def test_two_tower_example_trains_and_saves_parameters():
    v = example("two-tower")
    tower = v["item_tower"]
    assert tower.num_in_band > 0
    assert tower.parameters_saved == (tower.num_in_band - 64) * 16
    assert v["loss"].item() < 0.69  # below log 2, the loss of random scores
