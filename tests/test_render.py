"""The talking-head world's actors and 3D renderer: shapes, determinism, real 3D, and every dynamics factor
reaching the pixels. Mostly 64 px, so the whole file runs in seconds."""
import dataclasses
import importlib
import json

import numpy as np
import pytest
import torch

from vasa_lite.errors import InputError
from vasa_lite.world.actor import (DEFAULT_ACTOR_SEED, SPLITS, Actor, actor_name, actor_seeds, sample_actor)
from vasa_lite.world.params import FACTORS, FRAME_FACTOR_NAMES

R = importlib.import_module("vasa_lite.world.render")   # the module itself, whatever the package binds to that name
PART = R.PART_ID


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One torch thread: small renders gain little from two, and two stall badly on a busy shared CPU."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def actor():
    return sample_actor(DEFAULT_ACTOR_SEED)


@pytest.fixture(scope="module")
def r64():
    return R.Renderer(64)


def one(**factors):
    return {k: np.asarray([v], np.float32) for k, v in factors.items()}


def lum(img):
    return img.mean(-3) if img.dim() >= 3 else img


# ---------------------------------------------------------------- actors
def test_actors_are_deterministic_and_vary():
    a, b = sample_actor(123), sample_actor(123)
    assert a == b and a.name == actor_name(123) and a.seed == 123
    c = sample_actor(124)
    assert a != c
    # traits are continuous: many seeds give many distinct values, inside sensible ranges
    many = [sample_actor(s) for s in range(40)]
    assert len({round(m.head_width, 6) for m in many}) == 40
    for m in many:
        assert all(0.0 <= v <= 1.0 for v in m.skin + m.hair_colour + m.iris_colour + m.cloth_colour)
        assert 0.0 <= m.hair_length <= 1.0 and 0.0 <= m.bald <= 1.0
    assert {m.bg_kind for m in many} == {0, 1, 2}
    assert any(m.glasses > 0.5 for m in many) and any(m.beard > 0 for m in many)


def test_splits_are_disjoint_and_seeds_listed():
    ranges = sorted(SPLITS.values())
    assert all(hi <= lo2 for (_, hi), (lo2, _) in zip(ranges, ranges[1:]))
    assert actor_seeds("val", 3) == [100_000, 100_001, 100_002]
    assert actor_seeds("test", 0) == []
    with pytest.raises(InputError, match="unknown split"):
        actor_seeds("dev", 2)
    with pytest.raises(InputError, match="n must be"):
        actor_seeds("train", -1)
    with pytest.raises(InputError, match="integer"):
        sample_actor(1.5)
    with pytest.raises(InputError, match=">= 0"):
        sample_actor(-3)


def test_actor_tensors_and_stack(actor):
    t = actor.to_tensors()
    assert t["skin"].shape == (3,) and t["head_width"].shape == () and t["skin"].dtype == torch.float32
    st = Actor.stack([actor, sample_actor(1), sample_actor(2)])
    assert st["skin"].shape == (3, 3) and st["jaw_width"].shape == (3,)
    assert torch.equal(st["skin"][0], t["skin"])
    json.dumps(dataclasses.asdict(actor))          # plain numbers: fit for logs and checkpoints
    assert actor.name in actor.describe()


# ---------------------------------------------------------------- output contract
@pytest.mark.parametrize("size", [64, 128, 256])
def test_shape_range_dtype(actor, size):
    f = R.render(actor, one(yaw=10.0, jaw=0.5), size=size)
    assert f.shape == (1, 3, size, size) and f.dtype == torch.float32
    assert float(f.min()) >= 0.0 and float(f.max()) <= 1.0
    assert float(f.std()) > 0.05                   # a picture, not a flat colour
    u = R.to_uint8(f)
    assert u.shape == (1, size, size, 3) and u.dtype == np.uint8


def test_odd_size_and_defaults(actor):
    f = R.render(actor, {}, size=48)               # any size works; missing factors take their defaults
    assert f.shape == (1, 3, 48, 48)
    f2 = R.render(actor, {"yaw": torch.zeros(2)}, size=48)   # tensors are accepted as tracks
    assert torch.equal(f2[0], f[0]) and torch.equal(f2[1], f[0])


def test_deterministic_and_batch_independent(actor, r64):
    tr = R.clip_tracks(6, seed=3)
    a = r64.render(actor, tr)
    b = r64.render(actor, tr)
    assert a.numpy().tobytes() == b.numpy().tobytes()
    c = torch.cat(list(r64.render_clip(actor, tr, batch=4)))
    assert c.shape == a.shape and torch.equal(a, c)
    fresh = R.Renderer(64).render(actor, tr, batch=1)
    assert torch.equal(a, fresh)


def test_different_actors_differ(r64):
    frames = r64.render([sample_actor(s) for s in range(6)], {"yaw": np.zeros(6)})
    flat = frames.flatten(1)
    d = torch.cdist(flat, flat)
    assert float(d[~torch.eye(6, dtype=torch.bool)].min()) > 1.0


def test_one_actor_per_frame_or_broadcast(r64):
    actors = [sample_actor(1), sample_actor(2)]
    f = r64.render(actors, one(jaw=0.2))           # one track entry, two actors: the entry is shared
    assert f.shape[0] == 2 and not torch.equal(f[0], f[1])
    with pytest.raises(InputError, match="one actor, or one per frame"):
        r64.render(actors, {"jaw": np.zeros(3)})


def test_bad_inputs_raise_input_error(actor, r64):
    with pytest.raises(InputError, match="yaw.*out of range"):
        r64.render(actor, one(yaw=50.0))
    with pytest.raises(InputError, match="unknown factor"):
        r64.render(actor, one(mouth=1.0))
    with pytest.raises(InputError, match="NaN"):
        r64.render(actor, one(jaw=float("nan")))
    with pytest.raises(InputError, match="actors must be"):
        r64.render(["not an actor"], one(jaw=0.0))
    with pytest.raises(InputError, match="tracks must be a dict"):
        r64.render(actor, [0.0])
    with pytest.raises(InputError, match="size must be"):
        R.Renderer(8)
    with pytest.raises(InputError, match="batch must be"):
        list(r64.render_clip(actor, one(jaw=0.0), batch=0))


# ---------------------------------------------------------------- real 3D
def eye_widths(part):
    cols = lambda pid: torch.nonzero((part == pid).any(0)).flatten()   # noqa: E731
    left, right = cols(PART["eye_l"]), cols(PART["eye_r"])
    w = lambda c: float(c.max() - c.min() + 1) if len(c) else 0.0       # noqa: E731
    return w(left), w(right)


def test_turning_is_3d_not_a_sprite(actor):
    r = R.Renderer(128)
    _, aux = r.render([actor] * 3, {"yaw": np.array([-30.0, 0.0, 30.0], np.float32)}, return_aux=True)
    (l_m, r_m), (l_0, r_0), (l_p, r_p) = (eye_widths(p) for p in aux["part"])
    assert abs(l_0 - r_0) <= 1
    # yaw +30 turns the face to image right: the image-right eye is the far one and foreshortens
    assert r_p / l_p < 0.8 and l_m / r_m < 0.8
    # the nose sits in front of the eyes: it moves further than they do (parallax)
    lm = r.landmarks([actor] * 3, {"yaw": np.array([-30.0, 0.0, 30.0], np.float32)})
    off = lm["nose_tip"][:, 0] - (lm["eye_left"][:, 0] + lm["eye_right"][:, 0]) / 2
    assert off[0] < -3 and abs(off[1]) < 0.5 and off[2] > 3
    # the far cheek turns away and hides behind the nose: far/near visible areas drop well below 1
    area = lambda i, name: int((aux["part"][i] == PART[name]).sum())   # noqa: E731
    assert 0.8 < area(1, "cheek_r") / area(1, "cheek_l") < 1.25
    assert area(2, "cheek_r") < 0.6 * area(2, "cheek_l") and area(0, "cheek_l") < 0.6 * area(0, "cheek_r")
    # and the visible face area shifts toward the turn
    skin = (aux["part"] >= 1) & (aux["part"] <= PART["neck"])
    cx = [float(torch.nonzero(s)[:, 1].float().mean()) for s in skin]
    assert cx[0] < cx[1] < cx[2]


def test_aux_maps(actor, r64):
    f, aux = r64.render(actor, one(), return_aux=True)
    part, depth = aux["part"], aux["depth"]
    assert part.dtype == torch.uint8 and int(part.max()) < len(R.PARTS)
    fg = part > 0
    assert torch.isfinite(depth[fg]).all() and torch.isinf(depth[~fg]).all()
    assert float(depth[fg].min()) > 0
    for name in ("cranium", "eye_l", "eye_r", "nose_tip", "neck", "shoulders"):
        assert (part == PART[name]).any(), name


# ---------------------------------------------------------------- dynamics reach the pixels
def box_mean(img, box):
    x0, y0, x1, y1 = [int(round(v)) for v in box]
    return float(lum(img)[..., y0:y1, x0:x1].mean())


def test_jaw_opens_a_dark_mouth_and_drops_the_chin(actor, r64):
    tr = {"jaw": np.array([0.0, 1.0], np.float32)}
    f = r64.render([actor] * 2, tr)
    lm = r64.landmarks([actor] * 2, tr)
    box = lm["mouth_box"][1]
    assert box_mean(f[1], box) < box_mean(f[0], box) - 0.05
    assert lm["chin"][1, 1] > lm["chin"][0, 1] + 2          # the chin moves down the image


def test_lip_shapes_change_the_mouth(actor):
    r = R.Renderer(128)
    shapes = {"lip_round": [-1.0, 1.0], "smile": [-1.0, 1.0], "lip_close": [0.0, 1.0]}
    for name, vals in shapes.items():
        tr = {name: np.array(vals, np.float32), "jaw": np.full(2, 0.3, np.float32)}
        f = r.render([actor] * 2, tr)
        box = r.landmarks([actor] * 2, tr)["mouth_box"].min(0)
        x0, y0, x1, y1 = [int(round(v)) for v in box]
        d = (f[0] - f[1])[:, y0:y1, x0:x1].abs().mean()
        assert float(d) > 0.02, name
    # closing the lips shuts the dark gap that an open jaw makes
    tr = {"jaw": np.full(2, 0.3, np.float32), "lip_close": np.array([0.0, 1.0], np.float32)}
    f = r.render([actor] * 2, tr)
    box = r.landmarks([actor] * 2, tr)["mouth_box"][0]
    assert box_mean(f[1], box) > box_mean(f[0], box) + 0.02


def blue_iris_actor(actor):
    return dataclasses.replace(actor, iris_colour=(0.0, 0.1, 1.0), glasses=0.0)


def iris_pixels(img):
    r, g, b = img[0], img[1], img[2]
    return (b > 0.3) & (b > 1.6 * r) & (b > 1.4 * g)


def test_blink_covers_the_iris(actor):
    a = blue_iris_actor(actor)
    f = R.Renderer(64).render([a] * 3, {"blink": np.array([0.0, 0.5, 1.0], np.float32)})
    n = [int(iris_pixels(x).sum()) for x in f]
    assert n[0] > 10 and n[1] < n[0] and n[2] == 0


def test_squint_narrows_the_eyes(actor):
    a = blue_iris_actor(actor)
    r = R.Renderer(128)
    f = r.render([a] * 2, {"squint": np.array([0.0, 1.0], np.float32)})
    n = [int(iris_pixels(x).sum()) for x in f]
    assert n[1] < 0.85 * n[0]


def test_gaze_moves_the_iris(actor):
    a = blue_iris_actor(actor)
    r = R.Renderer(128)
    tr = {"gaze_yaw": np.array([0.0, 25.0, 0.0], np.float32), "gaze_pitch": np.array([0.0, 0.0, 15.0], np.float32)}
    f = r.render([a] * 3, tr)
    cent = []
    for x in f:
        yx = torch.nonzero(iris_pixels(x)).float()
        cent.append(yx.mean(0))
    assert float(cent[1][1] - cent[0][1]) > 1.0        # gaze_yaw > 0: toward image right
    assert float(cent[2][0] - cent[0][0]) < -1.0       # gaze_pitch > 0: up the image


def test_brows_move(actor):
    a = dataclasses.replace(actor, fringe=0.0, glasses=0.0, brow_colour=(0.1, 0.07, 0.05), brow_thickness=1.2)
    r = R.Renderer(128)
    tr = {"brow_raise": np.array([0.0, 1.0, 0.0], np.float32), "brow_furrow": np.array([0.0, 0.0, 1.0], np.float32)}
    f = r.render([a] * 3, tr)
    lm = r.landmarks([a] * 3, tr)
    x0, y0, x1, _ = [int(v) for v in lm["eye_left_box"][0]]
    rows = slice(max(0, y0 - 22), y0 + 2)             # the band above the eye that holds the brow
    brow_row = [int(torch.argmin(lum(x)[rows, x0:x1].mean(1))) for x in f]
    assert brow_row[1] < brow_row[0] - 1 and brow_row[2] > brow_row[0]   # raised: higher; furrowed: lower


def test_light_direction_changes_the_shaded_side():
    base = dataclasses.replace(sample_actor(3), bg_kind=0, glasses=0.0)
    left = dataclasses.replace(base, light_dir=(-0.8, 0.3, 0.5))
    right = dataclasses.replace(base, light_dir=(0.8, 0.3, 0.5))
    r = R.Renderer(64)
    f, aux = r.render([left, right], one(), return_aux=True)
    skin = (aux["part"][0] >= 1) & (aux["part"][0] <= PART["neck"])
    xs = torch.nonzero(skin)[:, 1].float()
    mid = float(xs.mean())
    cols = torch.arange(64).view(1, 64).expand(64, 64)
    lside, rside = skin & (cols < mid), skin & (cols >= mid)
    d = [float(lum(x)[lside].mean() - lum(x)[rside].mean()) for x in f]
    assert d[0] > 0.05 and d[1] < -0.05


def test_pose_factors_move_the_head(actor, r64):
    lm = r64.landmarks([actor] * 5, {"tx": np.array([0, 0.1, 0, 0, 0], np.float32),
                                     "ty": np.array([0, 0, 0.1, 0, 0], np.float32),
                                     "distance": np.array([1, 1, 1, 1.2, 1], np.float32),
                                     "roll": np.array([0, 0, 0, 0, 15], np.float32)})
    c, s = lm["head_center"], lm["head_scale"]
    assert c[1, 0] - c[0, 0] == pytest.approx(0.1 * 64, abs=0.5)     # tx: fraction of the image width
    assert c[2, 1] - c[0, 1] == pytest.approx(0.1 * 64, abs=0.5)     # ty: down is positive
    assert s[3] < s[0]                                               # farther is smaller
    tilt = lm["eye_right"][4] - lm["eye_left"][4]
    assert tilt[1] < -1.0                                            # roll > 0: counter-clockwise in the image


def test_landmarks_shapes_and_order(actor):
    lm = R.landmarks(actor, one(), size=64)
    for k in ("eye_left", "eye_right", "nose_tip", "mouth", "chin", "head_center"):
        assert lm[k].shape == (1, 2) and lm[k].dtype == np.float32
    for k in ("mouth_box", "eye_left_box", "eye_right_box"):
        assert lm[k].shape == (1, 4) and (lm[k][:, 2:] > lm[k][:, :2]).all()
    assert lm["eye_left"][0, 0] < lm["eye_right"][0, 0]
    ys = [lm[k][0, 1] for k in ("eye_left", "nose_tip", "mouth", "chin")]
    assert ys == sorted(ys)
    assert lm["head_scale"].shape == (1,) and lm["head_scale"][0] > 5


def test_bench_returns_json(actor):
    out = R.bench_render(64, n_frames=8, batch=4, repeats=1, threads=None)
    json.dumps(out)
    assert out["frames_per_s"] > 0 and out["size"] == 64 and out["n_frames"] == 8
    with pytest.raises(InputError, match="motion"):
        R.bench_render(64, n_frames=4, motion="wild")


def test_clip_tracks_are_valid():
    tr = R.clip_tracks(50, seed=1)
    assert set(tr) == set(FRAME_FACTOR_NAMES)
    for k, v in tr.items():
        assert v.shape == (50,) and FACTORS[k].low <= v.min() and v.max() <= FACTORS[k].high
