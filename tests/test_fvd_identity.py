"""FVD-lite and the identity network: the Fréchet distance itself, tiny models that learn, and the shipped
models' defining properties (real video closer to real than corrupted video; same actor closer than another)."""
import dataclasses

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from vasa_lite import InputError
from vasa_lite.config import get_preset
from vasa_lite.instruments import fvd as fvd_mod
from vasa_lite.instruments import identity as id_mod
from vasa_lite.instruments.banks import SCENE, bank_batch, clip_bank, pose_bank
from vasa_lite.instruments.fvd import FVDNet, clip_windows, corrupt, frechet_distance
from vasa_lite.instruments.identity import ArcFace, IdentityNet, identity_similarity
from vasa_lite.world.actor import actor_seeds, sample_actor
from vasa_lite.world.params import FACTORS
from vasa_lite.world.render import Renderer, clip_tracks


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return tmp_path_factory.mktemp("instruments")


# ------------------------------------------------------------------------------------------------ FVD-lite


def test_frechet_distance_of_gaussians():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(4000, 4))
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)
    b = a + np.array([3.0, 0, 0, 0])                       # same covariance, mean moved by 3: FD = 9
    assert frechet_distance(a, b) == pytest.approx(9.0, rel=1e-6)
    c = rng.normal(size=(4000, 4)) * 2.0                   # N(0, I) vs N(0, 4I): FD = 4 * (1 + 4 - 2 * 2) = 4
    assert frechet_distance(a, c) == pytest.approx(4.0, rel=0.1)
    with pytest.raises(InputError):
        frechet_distance(a[:1], b)


def test_clip_windows_and_corruptions():
    v = torch.rand(30, 3, 16, 16)
    assert clip_windows(v, 10, hop=5).shape == (5, 10, 3, 16, 16)
    with pytest.raises(InputError, match="shorter"):
        clip_windows(v[:5], 10)
    clips = clip_windows(v, 10)
    frozen = corrupt(clips, "frozen")
    assert torch.equal(frozen[:, 0], frozen[:, -1])
    assert torch.equal(corrupt(clips, "reversed")[:, 0], clips[:, -1])
    shuffled = corrupt(clips, "shuffled", torch.Generator().manual_seed(0))
    assert torch.allclose(shuffled.sum(1), clips.sum(1), atol=1e-4)     # the same frames, in another order
    with pytest.raises(InputError):
        corrupt(clips, "sideways")


def test_tiny_fvd_net_learns(root):
    """A fixed batch of smoke windows, each with a frame-order task: the network learns to tell them apart."""
    cfg = get_preset("smoke").instruments.fvd
    bank = clip_bank("smoke", "train", root=root, progress=False)
    torch.manual_seed(0)
    model = FVDNet(cfg)
    starts = [int(bank["offsets"][i]) for i in range(min(4, len(bank["offsets"]) - 1))
              if bank["offsets"][i + 1] - bank["offsets"][i] >= cfg.frames]
    base = fvd_mod._batch(bank["small"], np.asarray(starts), cfg.frames)
    gen = torch.Generator().manual_seed(0)
    clips = torch.cat([corrupt(base, k, gen) for k in fvd_mod.ORDER_TASKS])
    y = torch.arange(len(fvd_mod.ORDER_TASKS)).repeat_interleave(len(base))
    opt = torch.optim.Adam(model.parameters(), 3e-3)
    losses = []
    for _ in range(30):
        loss = F.cross_entropy(model(clips)["order"], y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert np.mean(losses[-3:]) < 0.6 * np.mean(losses[:3]), losses


def _render(actor_seed: int, n: int, seed: int) -> torch.Tensor:
    return Renderer(128).render(sample_actor(actor_seed), clip_tracks(n, seed=seed))


@pytest.mark.skipif(not fvd_mod.checkpoint_file("cpu").exists(), reason="no shipped fvd_cpu.pt")
def test_shipped_fvd_ranks_real_below_corrupted():
    seeds = actor_seeds("test", 4)
    real_a = [_render(seeds[0], 60, 1), _render(seeds[1], 60, 2)]
    real_b = [_render(seeds[2], 60, 3), _render(seeds[3], 60, 4)]
    model = fvd_mod.load_fvd("cpu")
    fa = fvd_mod.fvd_features(real_a, model, hop=5)
    fb = fvd_mod.fvd_features(real_b, model, hop=5)
    real = frechet_distance(fa, fb)
    gen = torch.Generator().manual_seed(0)
    clips_b = clip_windows(real_b, 25, hop=5)
    for kind in ("frozen", "shuffled"):
        with torch.no_grad():
            fc = model(corrupt(clips_b, kind, gen))["features"].double().numpy()
        assert frechet_distance(fa, fc) > real, kind


# ------------------------------------------------------------------------------------------------ identity


def test_arcface_margin_lowers_the_true_logit():
    head = ArcFace(8, 3, margin=0.3, scale=10.0)
    emb = F.normalize(head.weight.detach()[:1] + 0.1 * torch.randn(1, 8), dim=-1)
    with torch.no_grad():
        logits = head(emb, torch.tensor([0]))
        cos = F.normalize(emb, dim=-1) @ F.normalize(head.weight, dim=-1).T
    assert float(logits[0, 0]) < 10.0 * float(cos[0, 0])                  # cos(theta + m) < cos(theta)
    assert torch.allclose(logits[0, 1:], 10.0 * cos[0, 1:])


def test_tiny_identity_net_learns(root):
    cfg = get_preset("smoke").instruments.identity
    bank = pose_bank("smoke", "train", root=root, progress=False)
    torch.manual_seed(0)
    net = IdentityNet(cfg)
    actors, labels = np.unique(np.asarray(bank["actor"]), return_inverse=True)
    head = ArcFace(cfg.embed, len(actors), cfg.arc_margin, cfg.arc_scale)
    x = bank_batch(bank["frames"], np.arange(len(labels)))
    y = torch.from_numpy(labels)
    opt = torch.optim.Adam(list(net.parameters()) + list(head.parameters()), 3e-3)
    losses = []
    for _ in range(30):
        loss = F.cross_entropy(head(net(x), y), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert np.mean(losses[-3:]) < 0.6 * np.mean(losses[:3]), losses
    e = net.eval().embed(x[:3])
    assert e.shape == (3, cfg.embed) and torch.allclose(e.norm(dim=1), torch.ones(3), atol=1e-5)


def test_identity_embedding_is_differentiable():
    """A later chapter uses it as a frozen loss network: gradients reach the frames."""
    net = IdentityNet(get_preset("smoke").instruments.identity).eval().requires_grad_(False)
    x = torch.rand(2, 3, 40, 40, requires_grad=True)
    net.embed(x).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


@pytest.mark.skipif(not id_mod.checkpoint_file("cpu").exists(), reason="no shipped identity_cpu.pt")
def test_shipped_identity_same_actor_beats_another():
    """Unseen actors, each in three poses: one in its own scene, two in other actors' backgrounds, clothes and
    light. The same person must still be closer than anyone else."""
    rng = np.random.default_rng(7)
    seeds = actor_seeds("test", 40)[-4:]
    r = Renderer(128)
    views = {}
    for i, s in enumerate(seeds):
        tr = {f.name: rng.uniform(f.low, f.high, 3).astype(np.float32) for f in FACTORS.values()}
        tr["blink"] = np.zeros(3, np.float32)
        me = sample_actor(s)
        others = [sample_actor(seeds[(i + k) % 4]) for k in (1, 2)]
        scenes = [me] + [dataclasses.replace(me, **{f: getattr(o, f) for f in SCENE}) for o in others]
        views[s] = r.render(scenes, tr)
    model = id_mod.load_identity("cpu")
    same = [identity_similarity(views[s][:1], views[s][1:], model) for s in seeds]
    diff = [identity_similarity(views[a][:1], views[b][1:], model) for a in seeds for b in seeds if a != b]
    assert np.mean(same) > np.mean(diff) + 0.2, (same, diff)
    assert min(same) > np.median(diff)
