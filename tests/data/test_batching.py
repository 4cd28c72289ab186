"""Length-grouped batching and left-padded collation."""

import torch

from survey_sim.data.batching import EncodedItem, LengthGroupedBatchSampler, collate


def _items():
    return [EncodedItem(0, (5, 6, 7), (1, 2), (0.25, 0.75)),
            EncodedItem(1, (8,), (3, 4, 9), (0.2, 0.3, 0.5))]


def test_collate_left_pads_prompts_and_right_pads_options():
    b = collate(_items(), pad_id=0)
    assert b["input_ids"].tolist() == [[5, 6, 7], [0, 0, 8]]
    assert b["attention_mask"].tolist() == [[1, 1, 1], [0, 0, 1]]
    assert b["position_ids"].tolist() == [[0, 1, 2], [0, 0, 0]]
    assert b["option_ids"].tolist() == [[1, 2, 0], [3, 4, 9]]
    assert b["option_mask"].tolist() == [[True, True, False], [True, True, True]]
    assert torch.allclose(b["target"], torch.tensor([[0.25, 0.75, 0.0], [0.2, 0.3, 0.5]]))
    assert b["index"].tolist() == [0, 1]


def test_sampler_covers_every_index_once_and_groups_lengths():
    lengths = [((i * 37) % 101) + 1 for i in range(200)]
    s = LengthGroupedBatchSampler(lengths, 8, shuffle=True, seed=3, mega_batches=5)
    batches = list(s)
    assert sorted(i for b in batches for i in b) == list(range(200))
    assert len(batches) == len(s)
    spread = sum(max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in batches) / len(batches)
    assert spread < 30  # random batches of 8 would spread ~75 tokens on average


def test_sampler_is_seeded_per_epoch():
    s = LengthGroupedBatchSampler(list(range(50)), 4, shuffle=True, seed=1)
    first = list(s)
    assert first == list(s)
    s.set_epoch(1)
    assert list(s) != first
    assert list(LengthGroupedBatchSampler(list(range(50)), 4, shuffle=True, seed=2)) != first


def test_sampler_deals_batches_to_ranks_evenly():
    lengths = list(range(21))
    ranks = [list(LengthGroupedBatchSampler(lengths, 4, shuffle=False, num_replicas=2, rank=r)) for r in range(2)]
    assert len(ranks[0]) == len(ranks[1]) == 3
    assert {i for r in ranks for b in r for i in b} == set(range(21))
