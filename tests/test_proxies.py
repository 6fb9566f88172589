"""Zero-cost proxies: the published definitions on networks whose score is known by hand, every
registered proxy on every table space's networks (deterministic, finite), the batch sources,
and the resumable proxy cache."""

import math
import random

import pytest
import torch
from torch import nn

from lmnas.data import DatasetSpec, prepare_dataset
from lmnas.errors import LmnasError
from lmnas.proxies import PROXIES, ProxyBatch, make_batch, score_genotype
from lmnas.proxies.cache import ProxySpec, ProxyTable

SPACES = [("nas-bench-201", {"channels": 8, "cells_per_stage": 1}), ("nas-bench-macro", {})]


def batch_of(images, labels=None):
    images = torch.as_tensor(images, dtype=torch.float32)
    labels = torch.zeros(len(images), dtype=torch.int64) if labels is None else torch.as_tensor(labels)
    return ProxyBatch(images, labels, "test")


def test_naswot_is_the_log_determinant_of_the_hamming_kernel():
    images = torch.tensor([[1.0, -1.0, 2.0], [1.0, 1.0, -2.0], [-1.0, -1.0, 3.0]]).view(3, 3, 1, 1)
    model = nn.Sequential(nn.Flatten(), nn.ReLU())
    codes = (images.flatten(1) > 0).double()
    kernel = codes @ codes.T + (1 - codes) @ (1 - codes).T  # units where two images agree: 3 - Hamming
    assert kernel.tolist() == [[3, 1, 2], [1, 3, 0], [2, 0, 3]]
    got = PROXIES.create("naswot").score(model, batch_of(images), 0)
    assert got == pytest.approx(math.log(abs(torch.linalg.det(kernel).item())))


def test_synflow_of_a_linear_layer_is_the_sum_of_its_absolute_weights():
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 1, bias=False))
    with torch.no_grad():
        model[1].weight.copy_(torch.tensor([[0.5, -2.0, 1.0, -0.25]]))
    # R = sum_j |w_j| * 1  →  dR/dw_j = 1 (on |w|), score = sum |w_j|
    assert PROXIES.create("synflow").score(model, batch_of(torch.randn(2, 4, 1, 1)), 0) == pytest.approx(3.75)


def test_grad_norm_and_snip_are_the_loss_gradient_sums():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(6, 3))
    batch = batch_of(torch.randn(5, 6, 1, 1), [0, 1, 2, 1, 0])
    w = model[1].weight
    loss = nn.functional.cross_entropy(model(batch.images), batch.labels)
    (grad,) = torch.autograd.grad(loss, w)
    assert PROXIES.create("grad_norm").score(model, batch, 0) == pytest.approx(grad.norm().item(), rel=1e-6)
    assert PROXIES.create("snip").score(model, batch, 0) == pytest.approx((w * grad).abs().sum().item(), rel=1e-6)


def test_zen_grows_with_the_network_expressivity():
    """Zen-NAS: a wider/deeper plain ReLU CNN has a larger score."""
    def cnn(width, depth):
        layers, c = [], 3
        for _ in range(depth):
            layers += [nn.Conv2d(c, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU()]
            c = width
        return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, 10))

    batch = batch_of(torch.randn(8, 3, 16, 16))
    zen = PROXIES.create("zen")
    small, large = zen.score(cnn(8, 2), batch, 0), zen.score(cnn(32, 6), batch, 0)
    assert math.isfinite(small) and large > small
    with pytest.raises(LmnasError, match="no global average pool"):
        zen.score(nn.Sequential(nn.Flatten(), nn.Linear(3 * 16 * 16, 10)), batch, 0)


@pytest.mark.parametrize("space_name,settings", SPACES)
@pytest.mark.parametrize("proxy_name", PROXIES.names())
def test_every_proxy_scores_every_table_space_deterministically(space_name, settings, proxy_name):
    from lmnas.spaces import create_space

    space = create_space(space_name, **settings)
    batch = make_batch(space, 8, seed=0)
    proxy = PROXIES.create(proxy_name)
    genotypes = [space.sample(random.Random(i)) for i in range(3)]
    first = [score_genotype(proxy, space, g, batch, seed=0) for g in genotypes]
    again = [score_genotype(proxy, space, g, batch, seed=0) for g in reversed(genotypes)][::-1]
    assert first == again  # independent of order and of the global RNG
    assert all(math.isfinite(v) for v in first) and len(set(first)) > 1
    if proxy_name != "params":
        assert score_genotype(proxy, space, genotypes[0], batch, seed=1) != first[0]  # the seed is the init


def test_batches_come_from_noise_or_the_searched_data(tmp_path):
    from lmnas.spaces import create_space

    space = create_space("nas-bench-201", channels=8, cells_per_stage=1)
    noise = make_batch(space, 16, seed=0)
    assert noise.images.shape == (16, 3, 32, 32) and noise.source == "noise"
    assert torch.equal(noise.images, make_batch(space, 16, seed=0).images)
    prepare_dataset(DatasetSpec("digits"), tmp_path / "digits", seed=0, shard_rows=400)
    data = make_batch(space, 16, seed=0, data=tmp_path / "digits")  # 8x8 grey digits → 3x32x32
    assert data.images.shape == (16, 3, 32, 32) and int(data.labels.max()) < 10
    assert abs(float(data.images.mean())) < 1.0  # normalised by the manifest's mean/std
    with pytest.raises(LmnasError, match="need >= 2 images"):
        make_batch(space, 1, seed=0)


def test_the_proxy_cache_resumes_and_keeps_settings_apart(tmp_path):
    from lmnas.spaces import create_space

    space = create_space("nas-bench-201")
    keys = [space.key(space.sample(random.Random(i))) for i in range(7)]
    spec = ProxySpec("synflow", space_overrides={"channels": 8, "cells_per_stage": 1})
    table = ProxyTable(space, spec, tmp_path, flush_every=2)
    first = table.scores(keys[:4])
    assert table.computed == 4 and table.path.exists()
    resumed = ProxyTable(space, spec, tmp_path)
    assert resumed.scores(keys) == {**first, **resumed.scores(keys[4:])} and resumed.computed == 3
    assert ProxyTable(space, spec, tmp_path).computed == 0 and len(ProxyTable(space, spec, tmp_path).rows) == 7
    other = ProxyTable(space, ProxySpec("synflow", seed=1, space_overrides=spec.space_overrides), tmp_path)
    assert other.path != table.path and not other.rows
    assert ProxyTable(space, ProxySpec("synflow"), tmp_path).path != table.path  # full-size networks: another table
    assert resumed.cpu_s(keys) > 0
    assert table.identity["batch_sha256"] == make_batch(table.space, 32, 0).sha256()
    assert ProxyTable(space, ProxySpec("synflow", batch_size=16, space_overrides=spec.space_overrides),
                      tmp_path).path != table.path  # another batch, another table


def test_an_encoded_dataset_decodes_only_the_picked_images(tmp_path):
    import io

    import numpy as np
    from PIL import Image

    from lmnas.spaces import create_space

    rng = np.random.default_rng(0)
    for part, count in (("train", 6), ("val", 2)):
        for wnid in ("n01440764", "n01443537"):
            (tmp_path / "raw" / part / wnid).mkdir(parents=True)
            for i in range(count):
                out = io.BytesIO()
                Image.fromarray(rng.integers(0, 255, (30, 40 + i, 3), dtype=np.uint8)).save(out, format="JPEG")
                (tmp_path / "raw" / part / wnid / f"{wnid}_{i}.JPEG").write_bytes(out.getvalue())
    prepare_dataset(DatasetSpec("imagenet", root=str(tmp_path / "raw"), image_size=16), tmp_path / "prep", seed=0)
    space = create_space("nas-bench-201", channels=8, cells_per_stage=1, num_classes=2, input_shape=[3, 16, 16])
    batch = make_batch(space, 4, seed=0, data=tmp_path / "prep")
    assert batch.images.shape == (4, 3, 16, 16) and set(batch.labels.tolist()) <= {0, 1}
    assert torch.equal(batch.images, make_batch(space, 4, seed=0, data=tmp_path / "prep").images)
    assert math.isfinite(score_genotype(PROXIES.create("naswot"), space, space.sample(random.Random(0)), batch, 0))
