import pytest
import torch

from espnet2_clip.sep.heads import (
    InnerProductFusion,
    NoiseInvariantHead,
    PITHead,
    QueryMaskHead,
    combine_query_noise,
    two_way_permutation_loss,
)
from espnet2_clip.sep.loss import binary_mask_targets, mask_loss_weight, weighted_bce
from espnet2_clip.sep.query import EmbeddingQuery, LabelQuery


def test_fusion_is_scaled_inner_product():
    fusion = InnerProductFusion(3)
    with torch.no_grad():
        fusion.scale.copy_(torch.tensor([1.0, 2.0, -1.0]))
        fusion.bias.fill_(0.5)
    features = torch.randn(2, 3, 4, 5)
    q = torch.rand(2, 3)
    expected = sum(q[:, c, None, None] * fusion.scale[c] * features[:, c] for c in range(3)) + 0.5
    assert torch.allclose(fusion(features, q), expected, atol=1e-6)


def test_query_head_mask_is_sigmoid_of_fused_query():
    head = QueryMaskHead(EmbeddingQuery(num_channels=3, input_dim=6))
    features, emb = torch.randn(2, 3, 4, 5), torch.randn(2, 6)
    q = torch.sigmoid(head.query.proj(emb))
    expected = torch.sigmoid(torch.einsum("mkft,mk->mft", features, q))
    assert torch.allclose(head.masks(features, emb)[:, 0], expected, atol=1e-6)
    with pytest.raises(ValueError, match="6"):
        head.masks(features, torch.randn(2, 5))


def test_mask_targets_and_weight():
    mix = torch.tensor([[[1.0, 2.0, 0.0]]])
    src = torch.tensor([[[[0.6, 0.9, 0.0]], [[0.4, 1.1, 0.0]]]])
    targets = binary_mask_targets(src, mix)
    assert targets.tolist() == [[[[1.0, 0.0, 0.0]], [[0.0, 1.0, 0.0]]]]
    weight = mask_loss_weight(torch.tensor([0.0, 1.0, 1e6]))
    assert weight.tolist() == pytest.approx([1e-3, 0.6931472, 10.0], rel=1e-6)


def test_weighted_bce_is_mean_over_bins_not_weight_normalised():
    pred = torch.full((1, 2, 2), 0.5)
    target = torch.tensor([[[1.0, 0.0], [1.0, 0.0]]])
    weight = torch.tensor([[[2.0, 0.0], [0.0, 0.0]]])
    # only one bin has weight 2: 2 * log 2 / 4 bins
    assert weighted_bce(pred, target, weight).item() == pytest.approx(2 * 0.693147 / 4, rel=1e-5)


def test_nit_combination_is_clipped_sum():
    q = torch.tensor([0.2, 0.7, 0.9])
    n = torch.tensor([0.1, 0.5, 0.05])
    assert combine_query_noise(q, n).tolist() == pytest.approx([0.3, 1.0, 0.95])


def test_permutation_loss_picks_the_better_assignment():
    targets = torch.tensor([[[[1.0, 0.0]], [[0.0, 1.0]]]])  # (1, 2, 1, 2)
    weight = torch.ones(1, 1, 2)
    slots = torch.stack([targets[:, 1], targets[:, 0]], 1) * 0.98 + 0.01  # slots swapped
    loss = two_way_permutation_loss(lambda i, j: slots[:, j], targets, weight)
    direct = (weighted_bce(slots[:, 0], targets[:, 0], weight) + weighted_bce(slots[:, 1], targets[:, 1], weight)) / 2
    swapped = (weighted_bce(slots[:, 1], targets[:, 0], weight) + weighted_bce(slots[:, 0], targets[:, 1], weight)) / 2
    assert loss.item() == pytest.approx(swapped.item()) and swapped.item() < direct.item()


def test_nit_regulariser_on_known_input():
    torch.manual_seed(0)
    head = NoiseInvariantHead(EmbeddingQuery(num_channels=2, input_dim=4), reg_weight=0.1, reg_threshold=0.25)
    # zero features: every mask is sigmoid(bias) = sigmoid(0) = 0.5, so mean(N1 + N2) = 1.0
    features = torch.zeros(2, 2, 3, 4)
    targets = torch.zeros(2, 2, 3, 4)
    loss, stats = head.loss(features, (torch.randn(2, 4), torch.randn(2, 4)), targets, torch.ones(2, 3, 4))
    assert stats["noise_activation"].item() == pytest.approx(1.0)
    assert stats["loss_noise_reg"].item() == pytest.approx(0.1 * (1.0 - 0.25))
    # each prediction min(1, 0.5 + 0.5) = 1 against target 0: BCE clamps log(0) at -100
    assert stats["loss_mask"].item() == pytest.approx(100.0)
    assert loss.item() == pytest.approx(100.0 + 0.075)


def test_nit_warmup_trains_the_query_heads_alone_first():
    torch.manual_seed(0)
    query = EmbeddingQuery(num_channels=2, input_dim=4)
    head = NoiseInvariantHead(query, warmup_steps=2)
    plain = QueryMaskHead(query)
    plain.fusion.load_state_dict(head.fusion.state_dict())
    features = torch.randn(2, 2, 3, 4)
    queries = (torch.randn(2, 4), torch.randn(2, 4))
    targets = (torch.rand(2, 2, 3, 4) > 0.5).float()
    weight = torch.ones(2, 3, 4)
    expected, _ = plain.loss(features, queries, targets, weight)
    for step in (1, 2):  # warm-up: exactly the CLIPSep loss, no noise statistics
        loss, stats = head.loss(features, queries, targets, weight)
        assert loss.item() == pytest.approx(expected.item()) and stats["noise_activation"].item() == 0.0
        assert int(head.num_updates) == step
    head.eval()  # evaluation does not count as an update
    head.loss(features, queries, targets, weight)
    assert int(head.num_updates) == 2
    head.train()
    _, stats = head.loss(features, queries, targets, weight)  # third update: noise heads on
    assert stats["noise_activation"].item() > 0.5
    assert "num_updates" in head.state_dict()  # a resumed run keeps its place
    with pytest.raises(ValueError, match="warmup_steps must be >= 0"):
        NoiseInvariantHead(query, warmup_steps=-1)


def test_nit_noise_queries_come_from_mean_query_projection():
    head = NoiseInvariantHead(EmbeddingQuery(num_channels=3, input_dim=4))
    features = torch.randn(1, 3, 2, 2)
    e1, e2 = torch.randn(1, 4), torch.randn(1, 4)
    logits = [head.query(e1), head.query(e2)]
    noise = head.noise_masks(features, logits)
    mean = (logits[0] + logits[1]) / 2
    expected = torch.sigmoid(head.fusion(features, torch.sigmoid(head.noise_proj[1](mean))))
    assert torch.allclose(noise[:, 1], expected, atol=1e-6)
    # at inference the noise heads are dropped: the mask is the query mask alone
    assert torch.allclose(head.masks(features, e1)[:, 0], torch.sigmoid(head.mask_logits(features, logits[0])))


def test_pit_loss_is_permutation_invariant():
    torch.manual_seed(0)
    head = PITHead(num_channels=4)
    features = torch.randn(3, 4, 5, 6)
    targets = (torch.rand(3, 2, 5, 6) > 0.5).float()
    weight = torch.rand(3, 5, 6)
    loss, _ = head.loss(features, None, targets, weight)
    loss_swapped, _ = head.loss(features, None, targets.flip(1), weight)
    assert loss.item() == pytest.approx(loss_swapped.item(), rel=1e-6)
    masks = head.masks(features)
    assert masks.shape == (3, 2, 5, 6)
    # evaluation separates with head 0 and its complement (the official protocol)
    assert torch.allclose(masks[:, 0], torch.sigmoid(head.conv(features)[:, 0]))
    assert torch.allclose(masks[:, 0] + masks[:, 1], torch.ones(3, 5, 6))


def test_label_query():
    query = LabelQuery(num_channels=4, num_labels=3)
    assert query(torch.tensor([[0], [2]])).shape == (2, 4)
    with pytest.raises(ValueError, match="out of range"):
        query(torch.tensor([3]))
    with pytest.raises(ValueError, match="integer"):
        query(torch.randn(2, 4))


def test_nit_permutation_minimum_is_per_sample():
    """Two mixtures whose best noise-head assignments differ: each keeps its own best (a batch-level
    minimum would force one assignment on both and give a larger loss)."""
    targets = torch.tensor([[[[1.0, 0.0]], [[0.0, 1.0]]]] * 2)  # (2 mixtures, 2 sources, 1, 2)
    weight = torch.ones(2, 1, 2)
    good = targets * 0.98 + 0.01
    slots = good.clone()
    slots[1] = good[1].flip(0)  # mixture 1: its slots are swapped, mixture 0: direct
    loss = two_way_permutation_loss(lambda i, j: slots[:, j], targets, weight)
    assert loss.shape == (2,)

    def assignment(order):
        return torch.stack([weighted_bce(slots[:, j], targets[:, i], weight) for i, j in enumerate(order)]).mean(0)

    direct, swapped = assignment((0, 1)), assignment((1, 0))
    assert direct[0] < swapped[0] and swapped[1] < direct[1]
    torch.testing.assert_close(loss, torch.stack([direct[0], swapped[1]]))
    assert loss.mean() < min(direct.mean(), swapped.mean()) - 0.5
