"""PCA of differences without a model: direction, sign and centring."""

import torch

from steerscope.methods.contrastive import _pca_direction


def test_pca_recovers_planted_direction_with_positive_sign():
    g = torch.Generator().manual_seed(0)
    u = torch.nn.functional.normalize(torch.randn(16, generator=g), dim=0)
    diffs = 3.0 * u + 0.1 * torch.randn(50, 16, generator=g)
    d = _pca_direction(diffs, center=False)
    assert torch.dot(d.float(), u) > 0.99
    d_neg = _pca_direction(-diffs, center=False)
    assert torch.dot(d_neg.float(), u) < -0.99


def test_centred_pca_ignores_the_mean():
    g = torch.Generator().manual_seed(1)
    mean_dir = torch.zeros(8)
    mean_dir[0] = 1.0
    var_dir = torch.zeros(8)
    var_dir[1] = 1.0
    diffs = 5.0 * mean_dir + torch.randn(200, 1, generator=g) * 2.0 * var_dir + 0.01 * torch.randn(200, 8, generator=g)
    assert abs(_pca_direction(diffs, center=True)[1]) > 0.99
    assert abs(_pca_direction(diffs, center=False)[0]) > 0.9
