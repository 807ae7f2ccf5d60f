"""The one entry point, `metrics.evaluate`: input checks, every key present, and the CLI registry of instruments."""
import numpy as np
import pytest
import torch

from vasa_lite import InputError
from vasa_lite.checkpoints import checkpoint_path
from vasa_lite.cli import COMPONENTS, _resolve, build_parser
from vasa_lite.instruments.banks import roc_auc
from vasa_lite.metrics import KEYS, eval_instruments, evaluate
from vasa_lite.training import load_split
from vasa_lite.world.actor import sample_actor
from vasa_lite.world.params import EMOTIONS, FRAME_FACTOR_NAMES, SAMPLES_PER_FRAME
from vasa_lite.world.render import Renderer, clip_tracks

SHIPPED = all(checkpoint_path(c, "cpu").exists() for c in ("attributes", "syncnet", "fvd", "identity"))


pytestmark = pytest.mark.usefixtures("one_thread")


def test_evaluate_rejects_bad_video_before_loading_anything():
    video = torch.rand(10, 3, 32, 32)
    video[4, 1, 2, 2] = float("nan")
    with pytest.raises(InputError, match="NaN"):
        evaluate(video, np.zeros(10 * SAMPLES_PER_FRAME, np.float32))
    with pytest.raises(InputError, match="shape"):
        evaluate(torch.rand(10, 32, 32), None)
    with pytest.raises(InputError, match="at least 2"):
        evaluate(torch.rand(1, 3, 32, 32), None)
    with pytest.raises(InputError, match="reference"):
        evaluate(torch.rand(4, 3, 32, 32), None, reference=torch.full((1, 3, 32, 32), float("inf")))
    with pytest.raises(InputError, match="shipped checkpoints"):
        eval_instruments("smoke", checkpoint="x.pt")


def test_roc_auc():
    assert roc_auc([3, 4, 5], [0, 1, 2]) == 1.0
    assert roc_auc([0, 1], [2, 3]) == 0.0
    assert roc_auc([1, 1], [1, 1]) == 0.5
    rng = np.random.default_rng(0)
    p, n = rng.normal(1, 1, 50), rng.normal(0, 1, 70)
    pairs = (p[:, None] > n[None]).mean() + 0.5 * (p[:, None] == n[None]).mean()   # the definition, pair by pair
    assert roc_auc(p, n) == pytest.approx(pairs)


def test_instruments_are_registered_for_train_and_eval():
    for name in ("syncnet", "attributes", "fvd", "identity", "instruments"):
        train, ev = COMPONENTS[name]
        assert callable(_resolve(train)) and callable(_resolve(ev))
    args = build_parser().parse_args(["eval", "instruments", "--preset", "smoke"])
    assert args.component == "instruments"


@pytest.mark.skipif(not SHIPPED, reason="the shipped cpu instruments are not all there")
def test_evaluate_returns_every_metric():
    clip = load_split("cpu", "test", limit=1, min_frames=75)[0]     # long enough for FVD-lite's 10 clips
    t = min(len(clip["tracks"]), 80)
    actor = sample_actor(clip["meta"]["actor_seed"])
    r = Renderer(128)
    frames = r.render(actor, {n: clip["tracks"][:t, j] for j, n in enumerate(FRAME_FACTOR_NAMES)})
    audio = clip["audio"][: t * SAMPLES_PER_FRAME]
    reference = r.render(actor, clip_tracks(75, seed=3))
    m = evaluate(frames, audio, reference=reference)
    assert set(m) == set(KEYS)
    for k in ("Sc", "Sd", "delta_p", "distance_mean", "identity_similarity", "fvd_lite"):
        assert isinstance(m[k], float) and np.isfinite(m[k]), k
    assert isinstance(m["offset"], int) and abs(m["offset"]) <= 15
    assert m["emotion"] in EMOTIONS and set(m["pose_mean"]) == {"yaw", "pitch", "roll"}
    assert 0 <= m["mouth_open"]["min"] <= m["mouth_open"]["mean"] <= m["mouth_open"]["max"] <= 1
    assert m["tracks"]["jaw"].shape == (t,) and m["frames"] == t
    assert m["identity_similarity"] > 0.5                  # the same actor as the reference
    assert m["capp"] is None or -1 <= m["capp"] <= 1
    short = evaluate(frames[:30], None, reference=reference[:1])
    assert short["Sc"] is None and short["fvd_lite"] is None and len(short["notes"]) == 2
