"""The motion generator: noise schedule and samplers, multi-condition CFG, condition dropout, data windows,
training (loss falls, resume is exact), sliding-window generation, the regression baseline, and bad input."""
import math

import numpy as np
import pytest
import torch

from vasa_lite.config import PRESETS, get_preset
from vasa_lite.errors import InputError
from vasa_lite.motion import generate_motion, guidance_scales, guided_x0, load_motion, train_motion
from vasa_lite.motion.network import CONDITIONS, MotionTransformer, build_network
from vasa_lite.motion.schedule import DDIMSampler, DDPMSampler, NoiseSchedule
from vasa_lite.motion.train import drop_masks
from vasa_lite.training import read_log, resume_path

SMOKE = get_preset("smoke")
CFG = SMOKE.motion
M, DA = 6 + SMOKE.latent.dyn_dim, SMOKE.audio.width


@pytest.fixture(scope="module")
def net():
    torch.manual_seed(0)
    return build_network(SMOKE).eval()


def random_cond(b: int, gen: torch.Generator, emotion: bool = True) -> dict:
    W, P = CFG.window, CFG.prev
    cond = {"audio": torch.randn(b, W, DA, generator=gen), "audio_len": torch.full((b,), W),
            "prev_motion": torch.randn(b, P, M, generator=gen), "prev_audio": torch.randn(b, P, DA, generator=gen),
            "gaze": torch.randn(b, 2, generator=gen) * 10, "distance": 1 + 0.1 * torch.randn(b, generator=gen)}
    if emotion:
        cond["emotion"] = torch.softmax(torch.randn(b, 5, generator=gen), -1)
    return cond


@pytest.fixture(scope="module")
def trained(tmp_path_factory, one_thread):
    """A diffusion model and a regression baseline trained briefly on the smoke world (a few seconds each)."""
    d = tmp_path_factory.mktemp("motion")
    diff = train_motion("smoke", steps=60, out=d / "motion_smoke.pt", progress=False)
    reg = train_motion("smoke", steps=60, out=d / "regression_smoke.pt", progress=False, baseline="regression")
    return {"dir": d, "motion": diff, "regression": reg,
            "model": load_motion("smoke", d / "motion_smoke.pt"),
            "baseline": load_motion("smoke", d / "regression_smoke.pt", baseline=True)}


# ------------------------------------------------------------------------------------------------- config


def test_presets_scale_and_keep_the_papers_numbers():
    s, c, g = (PRESETS[k].motion for k in ("smoke", "cpu", "gpu"))
    assert s.width * s.layers < c.width * c.layers < g.width * g.layers
    assert (g.layers, g.width, g.heads) == (8, 512, 8)                      # the paper's transformer
    for m in (s, c, g):
        assert (m.cond_dropout, m.prev_dropout, m.sample_steps) == (0.1, 0.5, 50)
        assert (m.guidance_audio, m.guidance_gaze) == (0.5, 1.0)
        assert 0 < m.prev <= m.window
    assert (c.window, c.prev) == (50, 10) and (g.window, g.prev) == (50, 10)


# ------------------------------------------------------------------------------------ schedule and samplers


def test_q_sample_has_the_forward_process_statistics():
    sch = NoiseSchedule(1000, "cosine")
    ab = sch.alphas_cumprod
    assert ab[0] > 0.999 and ab[-1] < 1e-3 and bool((ab[1:] < ab[:-1]).all())
    assert torch.allclose(ab, torch.cumprod(1 - sch.betas, 0))
    gen = torch.Generator().manual_seed(0)
    n = 40000
    x0 = torch.full((n, 1), 2.0)
    for t in (10, 400, 900):
        x = sch.q_sample(x0, torch.full((n,), t), torch.randn(n, 1, generator=gen))
        mean, std = math.sqrt(float(ab[t])) * 2.0, math.sqrt(1 - float(ab[t]))
        assert abs(float(x.mean()) - mean) < 4 * std / math.sqrt(n) + 1e-4, t
        assert abs(float(x.std()) - std) < 0.02 * std + 1e-4, t


def test_samplers_end_on_a_known_x0_and_ddim_is_deterministic():
    sch = NoiseSchedule(1000)
    target = torch.linspace(-1, 1, 2 * 5 * 3).view(2, 5, 3)
    calls = []

    def oracle(x, t):                                        # a perfect denoiser of a one-point data set
        calls.append(int(t[0]))
        return target

    for cls, steps in ((DDPMSampler, 50), (DDIMSampler, 10)):
        calls.clear()
        out = cls(sch, steps).sample(oracle, (2, 5, 3), torch.Generator().manual_seed(0))
        assert torch.allclose(out, target, atol=1e-5), cls.__name__
        assert len(calls) == steps and calls[0] == 999 and calls[-1] == 0 and calls == sorted(calls, reverse=True)

    def shrink(x, t):                                        # an x0 that depends on x_t
        return 0.5 * x

    ddim = DDIMSampler(sch, 10)
    a = ddim.sample(shrink, (2, 5, 3), torch.Generator().manual_seed(3))
    b = ddim.sample(shrink, (2, 5, 3), torch.Generator().manual_seed(3))
    c = ddim.sample(shrink, (2, 5, 3), torch.Generator().manual_seed(4))
    assert torch.equal(a, b) and not torch.allclose(a, c)


def test_ddpm_step_is_the_x0_posterior():
    """With every training step kept, the respaced step is DDPM's posterior q(x_{t-1} | x_t, x0)."""
    sch = NoiseSchedule(100, "linear")
    smp = DDPMSampler(sch, 100)
    i = 40
    t = smp.timesteps[i]
    x0, xt = torch.randn(4, 3), torch.randn(4, 3)
    out = smp.step(x0, i, xt, torch.Generator().manual_seed(1))
    z = torch.randn(4, 3, generator=torch.Generator().manual_seed(1))
    ab, ab_prev, beta = float(sch.alphas_cumprod[t]), float(sch.alphas_cumprod[t - 1]), float(sch.betas[t])
    mean = beta * math.sqrt(ab_prev) / (1 - ab) * x0 + (1 - ab_prev) * math.sqrt(1 - beta) / (1 - ab) * xt
    var = beta * (1 - ab_prev) / (1 - ab)
    assert torch.allclose(out, mean + math.sqrt(var) * z, atol=1e-5)


# ------------------------------------------------------------------------------------------------- guidance


def test_cfg_is_the_papers_formula_in_one_forward_pass(net):
    gen = torch.Generator().manual_seed(0)
    b = 2
    x = torch.randn(b, CFG.window, M, generator=gen)
    t = torch.tensor([500, 20])
    cond = random_cond(b, gen)
    scales = {"audio": 0.5, "gaze": 1.0, "distance": 0.0, "emotion": 0.3}
    seen = []
    hook = net.register_forward_hook(lambda m, args, out: seen.append(args[0].shape[0]))
    try:
        guided = guided_x0(net, x, t, cond, scales)
    finally:
        hook.remove()
    assert seen == [b * 4]                                   # one pass: conditional + audio, gaze, emotion dropped
    with torch.no_grad():
        full = net(x, t, cond)
        alone = {c: net(x, t, {**cond, "drop": {c: torch.ones(b, dtype=torch.bool)}})
                 for c in ("audio", "gaze", "emotion")}
    lam = sum(scales.values())
    hand = (1 + lam) * full - sum(scales[c] * alone[c] for c in alone)
    assert torch.allclose(guided, hand, atol=1e-5)
    assert not torch.allclose(guided, full, atol=1e-3)       # guidance changes the prediction
    # no scale: the plain conditional prediction; an absent condition is not guided
    assert torch.allclose(guided_x0(net, x, t, cond, {c: 0.0 for c in CONDITIONS}), full, atol=1e-6)
    seen.clear()
    hook = net.register_forward_hook(lambda m, args, out: seen.append(args[0].shape[0]))
    try:
        guided_x0(net, x, t, {k: v for k, v in cond.items() if k != "emotion"}, scales)
    finally:
        hook.remove()
    assert seen == [b * 3]


@pytest.mark.parametrize("bad, name", [({"audio": -0.5}, "audio"), ({"gaze": float("nan")}, "gaze"),
                                       ({"emotion": "lots"}, "emotion"), ({"lips": 1.0}, "lips")])
def test_bad_guidance_scales_name_the_condition(bad, name):
    with pytest.raises(InputError, match=name):
        guidance_scales(bad, CFG)


def test_guidance_defaults_are_the_papers():
    s = guidance_scales(None, CFG)
    assert s == {"audio": 0.5, "gaze": 1.0, "distance": 0.0, "emotion": 0.0}
    more = guidance_scales({"emotion": 2}, CFG)
    assert more["emotion"] == 2.0 and more["audio"] == 0.5 and more["gaze"] == 1.0   # the rest keep their defaults


# ----------------------------------------------------------------------------------- conditions and dropout


def test_condition_dropout_rates_are_the_papers():
    n = 40000
    gen = torch.Generator().manual_seed(0)
    ok = torch.rand(n, generator=gen) < 0.8
    m = drop_masks(n, CFG, gen, prev_ok=ok)
    se = lambda p: 4 * math.sqrt(p * (1 - p) / n)          # noqa: E731
    for c in CONDITIONS:
        assert abs(float(m[c].float().mean()) - 0.1) < se(0.1), c
    both = float((m["audio"] & m["gaze"]).float().mean())
    assert abs(both - 0.01) < se(0.01)                       # independent conditions
    assert bool(m["prev"][~ok].all())                        # no history: always dropped
    assert abs(float(m["prev"][ok].float().mean()) - 0.5) < se(0.5)
    cut = m["audio_len"] < CFG.window
    assert abs(float(cut.float().mean()) - CFG.audio_trunc) < se(CFG.audio_trunc)
    assert int(m["audio_len"][cut].min()) >= 1 and int(m["audio_len"].max()) == CFG.window
    # an audio-context network's lookahead is withheld as often as audio is cut (streaming has none); with the
    # per-frame projection there is no such draw, so its training draws are as before
    import dataclasses

    assert "ahead" not in m and CFG.audio_context == 0
    ctx = dataclasses.replace(CFG, audio_context=2)
    m2 = drop_masks(n, ctx, torch.Generator().manual_seed(0), prev_ok=ok)
    assert abs(float(m2["ahead"].float().mean()) - CFG.audio_trunc) < se(CFG.audio_trunc)
    assert torch.equal(m2["audio_len"], drop_masks(n, CFG, torch.Generator().manual_seed(0), prev_ok=ok)["audio_len"])


def test_x0_skip_adds_the_network_to_a_scaled_copy_of_x_t():
    """x0_skip: x0_hat = sqrt(abar_t) X_t + sqrt(1 - abar_t) F, so with F = 0 the prediction is the skip alone, X_t
    itself at the lowest noise and nothing at the highest; without it x0_hat = F."""
    import dataclasses

    gen = torch.Generator().manual_seed(3)
    x = torch.randn(2, CFG.window, M, generator=gen)
    cond = random_cond(2, gen)
    abar = NoiseSchedule(CFG.diffusion_steps, CFG.schedule).alphas_cumprod
    for skip in (True, False):
        torch.manual_seed(0)
        n = MotionTransformer(dataclasses.replace(CFG, x0_skip=skip), M, DA).eval()
        torch.nn.init.zeros_(n.out.weight)
        torch.nn.init.zeros_(n.out.bias)
        t = torch.tensor([0, CFG.diffusion_steps - 1])
        with torch.no_grad():
            out = n(x, t, cond)
        if skip:
            assert torch.allclose(out, abar[t].sqrt().view(2, 1, 1) * x)
            assert torch.allclose(out[0], x[0], atol=0.02) and out[1].abs().max() < 0.02
        else:
            assert torch.count_nonzero(out) == 0
    reg = MotionTransformer(dataclasses.replace(CFG, x0_skip=True), M, DA, regression=True)
    assert not reg.x0_skip                                    # the baseline has no X_t to skip from


def test_loss_weights_v_is_a_uniform_loss_on_the_skip_output_and_min_snr_is_capped():
    """loss_weight="v" with the skip: the weighted x0 loss equals the plain mean squared error of the network's own
    output F against its target (x0 - sqrt(abar_t) X_t) / sqrt(1 - abar_t), at every t. "min_snr": min(SNR_t, 5),
    so low noise weighs 5 and the noisiest steps almost nothing; "x0" weighs all alike (the paper's loss)."""
    import dataclasses

    from vasa_lite.motion.train import motion_loss, timestep_weights

    sched = NoiseSchedule(CFG.diffusion_steps, CFG.schedule)
    torch.manual_seed(0)
    n = MotionTransformer(dataclasses.replace(CFG, x0_skip=True), M, DA).eval()
    gen = torch.Generator().manual_seed(5)
    b = 3
    x0 = torch.randn(b, CFG.window, M, generator=gen)
    batch = {"motion": x0, "valid": torch.ones(b, CFG.window, dtype=torch.bool)}
    cond = random_cond(b, gen)
    for t in (torch.tensor([0, 0, 0]), torch.tensor([5, 400, 999])):
        with torch.no_grad():
            got = motion_loss(n, sched, batch, cond, torch.Generator().manual_seed(1), t=t, loss_weight="v")
            noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(1))
            x_t = sched.q_sample(x0, t, noise)
            ab = sched.alphas_cumprod[t].view(-1, 1, 1)
            f = (n(x_t, t, cond) - ab.sqrt() * x_t) / (1 - ab).sqrt()
            target = (x0 - ab.sqrt() * x_t) / (1 - ab).sqrt()
        assert float(got["loss"]) == pytest.approx(float(((f - target) ** 2).mean()), rel=1e-3)
        assert float(got["loss"]) < 10                      # no blow-up at t = 0, where 1 / (1 - abar_t) ~ 1e4
    t = torch.arange(0, CFG.diffusion_steps, 50)
    w = timestep_weights(sched, t, "min_snr")
    snr = sched.alphas_cumprod[t] / (1 - sched.alphas_cumprod[t])
    assert torch.allclose(w, snr.clamp(max=5.0)) and float(w[0]) == 5.0 and float(w[-1]) < 0.01
    assert bool((w.diff() <= 0).all())
    assert torch.equal(timestep_weights(sched, t, "x0"), torch.ones(len(t)))
    with pytest.raises(InputError, match="x0_skip"):
        timestep_weights(sched, t, "v", x0_skip=False)
    with pytest.raises(InputError, match="min_snr"):
        timestep_weights(sched, t, "snr")


@pytest.fixture(scope="module")
def net_context():
    """The network with an audio projection that sees 2 frames either side (MotionConfig.audio_context)."""
    import dataclasses

    torch.manual_seed(0)
    return MotionTransformer(dataclasses.replace(CFG, audio_context=2), M, DA).eval()


@pytest.fixture(scope="module")
def net_per_frame():
    """The network with each frame's audio projected alone (audio_context = 0, as checkpoints before it have)."""
    import dataclasses

    torch.manual_seed(0)
    return MotionTransformer(dataclasses.replace(CFG, audio_context=0), M, DA).eval()


@pytest.mark.parametrize("which", ["net_context", "net_per_frame"])
def test_dropped_or_cut_conditions_do_not_reach_the_output(which, request):
    net = request.getfixturevalue(which)
    gen = torch.Generator().manual_seed(1)
    x, t = torch.randn(1, CFG.window, M, generator=gen), torch.tensor([300])
    cond = random_cond(1, gen)
    other = random_cond(1, gen)
    yes, no = torch.ones(1, dtype=torch.bool), torch.zeros(1, dtype=torch.bool)
    with torch.no_grad():
        for c, keys in (("gaze", ["gaze"]), ("emotion", ["emotion"]), ("audio", ["audio"]),
                        ("prev", ["prev_motion", "prev_audio"])):
            swapped = {**cond, **{k: other[k] for k in keys}}
            kept = [net(x, t, {**z, "drop": {c: no}}) for z in (cond, swapped)]
            dropped = [net(x, t, {**z, "drop": {c: yes}}) for z in (cond, swapped)]
            assert not torch.allclose(*kept, atol=1e-4), c         # the condition matters when kept
            assert torch.allclose(*dropped, atol=1e-6), c          # and not at all when dropped
        # truncated audio: frames after audio_len do not count
        cut = {**cond, "audio_len": torch.tensor([7])}
        late = cond["audio"].clone()
        late[:, 7:] = torch.randn(1, CFG.window - 7, DA, generator=gen)
        assert torch.allclose(net(x, t, cut), net(x, t, {**cut, "audio": late}), atol=1e-6)


def test_audio_context_sees_the_previous_frames_and_not_the_dropped_ones(net_context, net_per_frame):
    """With audio_context = k the window's first frames hear the previous window's last audio frames (one
    convolution over both), and none of it when the history is dropped; without it (a linear projection) they
    never do, and the window's projection is the same for the old per-frame form."""
    gen = torch.Generator().manual_seed(3)
    b, W, P, d = 1, CFG.window, CFG.prev, CFG.width
    audio, pa = torch.randn(b, W, DA, generator=gen), torch.randn(b, P, DA, generator=gen)
    other = torch.randn(b, P, DA, generator=gen)
    keep = torch.ones(b, W)
    with torch.no_grad():
        def first(model, prev, kept):
            return model._audio_terms(audio, keep, prev, torch.full((b, 1), float(kept)), d, b, "cpu")[0]
        a, c = first(net_context, pa, True), first(net_context, other, True)
        assert not torch.allclose(a[:, :2], c[:, :2], atol=1e-5)          # the first 2 frames hear the history
        assert torch.allclose(a[:, 2:], c[:, 2:], atol=1e-6)              # frames further in do not
        assert torch.allclose(first(net_context, pa, False), first(net_context, other, False), atol=1e-6)
        plain = net_per_frame
        assert isinstance(plain.audio_in, torch.nn.Linear) and CFG.audio_context == 0    # the presets' choice
        assert torch.allclose(first(plain, pa, True), plain.audio_in(audio), atol=1e-6)
        assert torch.allclose(first(plain, pa, True), first(plain, other, True), atol=1e-6)


def test_generation_gives_each_window_the_k_audio_frames_after_it(net_context):
    """generate_motion hands window k the audio frames [W(k+1), W(k+1) + audio_context) as its lookahead: the first
    window changes with frame W, not with frame W + 2; a network recorded without the lookahead hears neither."""
    import dataclasses

    W, k = CFG.window, net_context.cfg.audio_context
    feats = torch.randn(2 * W, DA, generator=torch.Generator().manual_seed(2))
    run = lambda net, f: generate_motion(f, model=net, sampler="ddim", steps=2, pose_smooth=0)[:W]  # noqa: E731
    near, far = feats.clone(), feats.clone()
    near[W] += 1.0
    far[W + k] += 1.0
    first = run(net_context, feats)
    assert not torch.allclose(first, run(net_context, near), atol=1e-5)
    assert torch.equal(first, run(net_context, far))
    deaf = MotionTransformer(dataclasses.replace(net_context.cfg, audio_lookahead=False), M, DA).eval()
    deaf.load_state_dict(net_context.state_dict())
    assert torch.equal(run(deaf, feats), run(deaf, near))


def test_audio_context_hears_the_lookahead_only_at_the_window_end(net_context):
    """The k frames of audio after the window (cond["next_audio"]) reach the window's last k frames and nothing
    else; a cut window (audio_len < W) or dropped audio hears none of it, as a window with no lookahead."""
    gen = torch.Generator().manual_seed(4)
    x, t = torch.randn(1, CFG.window, M, generator=gen), torch.tensor([300])
    cond = random_cond(1, gen)
    k, W, d = net_context.cfg.audio_context, CFG.window, CFG.width
    nxt, other = torch.randn(1, k, DA, generator=gen), torch.randn(1, k, DA, generator=gen)
    keep = torch.ones(1, W)
    with torch.no_grad():
        def win(ahead, keep=keep):
            return net_context._audio_terms(cond["audio"], keep, None, torch.zeros(1, 1), d, 1, "cpu", ahead)[0]
        a, c, none = win(nxt), win(other), win(None)
        assert not torch.allclose(a[:, -k:], c[:, -k:], atol=1e-5)       # the last k frames hear it
        assert torch.allclose(a[:, :-k], c[:, :-k], atol=1e-6)           # frames before them do not
        assert torch.allclose(win(torch.zeros(1, k, DA)), none, atol=1e-6)   # zeros: as if there were none
        # through the whole network: kept, it counts; cut or dropped, it does not
        assert not torch.allclose(net_context(x, t, {**cond, "next_audio": nxt}),
                                  net_context(x, t, {**cond, "next_audio": other}), atol=1e-5)
        yes = torch.ones(1, dtype=torch.bool)
        for change in ({"audio_len": torch.tensor([W - 1])}, {"drop": {"audio": yes}}):
            z = {**cond, **change}
            assert torch.allclose(net_context(x, t, {**z, "next_audio": nxt}), net_context(x, t, z), atol=1e-6)


# -------------------------------------------------------------------------------------------------- data


def test_windows_come_from_the_cached_sequences():
    from vasa_lite.motion.data import cache_dir, motion_data, sample_windows

    data = motion_data("smoke", "train", progress=False)
    n_frames = len(data["motion"])
    assert data["motion"].shape == (n_frames, M) and data["audio"].shape == (n_frames, DA)
    assert data["offsets"][-1] == n_frames and np.isfinite(data["motion"]).all()
    assert np.allclose(data["emotion"].sum(1), 1, atol=1e-4)
    assert list(cache_dir("smoke").glob("train_*.npz"))
    gen = torch.Generator().manual_seed(0)
    w = sample_windows(data, 64, CFG.window, CFG.prev, gen)
    off = data["offsets"]
    for i in range(64):
        m = w["motion"][i].numpy()
        row = np.flatnonzero((data["motion"] == m[0]).all(1))[0]      # where the window starts
        clip = np.searchsorted(off, row, side="right") - 1
        n = int(w["audio_len"][i])
        assert np.array_equal(m[:n], data["motion"][row:row + n]) and row + n <= off[clip + 1]
        assert bool(w["valid"][i, :n].all()) and not bool(w["valid"][i, n:].any())
        if bool(w["prev_ok"][i]):
            assert np.array_equal(w["prev_motion"][i].numpy(), data["motion"][row - CFG.prev:row])
            assert row - CFG.prev >= off[clip]
        assert np.isclose(float(w["distance"][i]), data["distance"][row:row + n].mean(), atol=1e-5)
    # the lookahead: the frames after the window, zero past the clip's end
    ahead = sample_windows(data, 64, CFG.window, CFG.prev, torch.Generator().manual_seed(0), ahead=3)
    assert torch.equal(ahead["motion"], w["motion"]) and ahead["next_audio"].shape == (64, 3, DA)
    for i in range(64):
        row = np.flatnonzero((data["motion"] == w["motion"][i, 0].numpy()).all(1))[0]
        end = off[np.searchsorted(off, row, side="right")]
        for j in range(3):
            f = row + CFG.window + j
            want = data["audio"][f] if f < end else np.zeros(DA)
            assert np.allclose(ahead["next_audio"][i, j].numpy(), want)
    assert "next_audio" in ahead and w["next_audio"].shape == (64, 0, DA)


def test_checkpoint_identity_changes_with_content(tmp_path):
    from vasa_lite.motion.data import file_identity

    f = tmp_path / "x.pt"
    f.write_bytes(b"one")
    a = file_identity(f)
    f.write_bytes(b"two")
    assert file_identity(f) != a and len(a) == 12
    assert file_identity(tmp_path / "none.pt") == "missing"


# ------------------------------------------------------------------------------------------------ training


def test_training_lowers_the_loss_and_stores_what_generation_needs(trained):
    rows = read_log(trained["motion"]["log"])
    assert rows[-1]["step"] == 60
    assert np.mean([r["loss"] for r in rows[-2:]]) < 0.8 * rows[0]["loss"]
    model = trained["model"]
    meta = model.meta
    assert meta["component"] == "motion" and meta["preset"] == "smoke" and meta["steps"] == 60
    extra = meta["extra"]
    assert np.allclose(model.motion_mean.numpy(), extra["stats"]["mean"])          # stats travel in the weights
    assert np.allclose(model.motion_std.numpy(), extra["stats"]["std"]) and float(model.motion_std.min()) > 0
    assert set(extra["sources"]) == {"latent", "audio", "attributes", "world"}
    assert np.isfinite(meta["metrics"]["val_loss"])


def test_training_resumes_exactly(tmp_path, monkeypatch, one_thread):
    import vasa_lite.motion.data as md

    real, calls = md.sample_windows, []

    def stop_at_7(*a, **k):                                  # Ctrl-C at the start of step 7
        calls.append(1)
        if len(calls) == 8:
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(md, "sample_windows", stop_at_7)
    with pytest.raises(KeyboardInterrupt):
        train_motion("smoke", steps=12, out=tmp_path / "a.pt", progress=False)
    assert resume_path(tmp_path / "a.pt").exists()
    monkeypatch.setattr(md, "sample_windows", real)
    resumed = train_motion("smoke", steps=12, out=tmp_path / "a.pt", progress=False)
    straight = train_motion("smoke", steps=12, out=tmp_path / "b.pt", progress=False)
    assert resumed["resumed_from"] == 7 and resumed["steps_this_run"] == 5
    a = load_motion("smoke", tmp_path / "a.pt").state_dict()
    b = load_motion("smoke", tmp_path / "b.pt").state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_regression_baseline_trains_and_generates(trained):
    rows = read_log(trained["regression"]["log"])
    assert np.mean([r["loss"] for r in rows[-2:]]) < 0.8 * rows[0]["loss"]
    base = trained["baseline"]
    assert base.regression and base.meta["component"] == "regression"
    assert trained["regression"]["checkpoint"].endswith("regression_smoke.pt")
    feats = torch.randn(53, DA, generator=torch.Generator().manual_seed(0))
    out = generate_motion(feats, model=base)
    assert out.shape == (53, M) and torch.isfinite(out).all()
    assert torch.equal(out, generate_motion(feats, model=base, seed=5))        # no noise: no seed dependence


# ---------------------------------------------------------------------------------------------- generation


@pytest.mark.parametrize("frames", [1, CFG.window, CFG.window + 1, 137])
def test_generation_covers_any_length(trained, frames):
    feats = torch.randn(frames, DA, generator=torch.Generator().manual_seed(frames))
    out = generate_motion(feats, model=trained["model"], sampler="ddim", steps=5, seed=0)
    assert out.shape == (frames, M) and torch.isfinite(out).all()


def test_generation_is_reproducible_by_seed_and_follows_the_previous_window(trained):
    model = trained["model"]
    feats = torch.randn(137, DA, generator=torch.Generator().manual_seed(0))
    a = generate_motion(feats, model=model, seed=3)                           # 50 DDPM steps, default guidance
    b = generate_motion(feats, model=model, seed=3)
    c = generate_motion(feats, model=model, seed=4)
    assert torch.equal(a, b) and not torch.allclose(a, c)
    # changing only the first window's audio changes the second window, through its previous-window condition (as
    # sampled: the pose filter would carry the first window's frames over the boundary by itself)
    a = generate_motion(feats, model=model, seed=3, pose_smooth=0)
    other = feats.clone()
    other[:CFG.window] = torch.randn(CFG.window, DA, generator=torch.Generator().manual_seed(9))
    d = generate_motion(other, model=model, seed=3, pose_smooth=0)
    W = CFG.window
    assert not torch.allclose(a[W:2 * W], d[W:2 * W], atol=1e-3 * float(model.motion_std.min()))


def test_pose_filter_smooths_z_pose_only_and_is_a_setting(trained):
    """generate_motion low-pass filters z_pose (cfg.pose_smooth frames) after sampling: z_dyn is the sample's, z_pose
    is the sampled z_pose filtered by a Gaussian (less frame-to-frame acceleration, the same mean), and 0 turns it
    off. A bad sigma is an InputError naming it."""
    from vasa_lite.instruments.attributes import smooth_pose
    from vasa_lite.motion.generate import filter_pose

    model = trained["model"]
    assert model.cfg.pose_smooth == 1.0
    feats = torch.randn(2 * CFG.window + 7, DA, generator=torch.Generator().manual_seed(5))
    raw = generate_motion(feats, model=model, seed=1, sampler="ddim", steps=4, pose_smooth=0)
    out = generate_motion(feats, model=model, seed=1, sampler="ddim", steps=4)
    assert torch.equal(out[:, 6:], raw[:, 6:])
    assert torch.allclose(out[:, :6], torch.from_numpy(smooth_pose(raw[:, :6].numpy(), 1.0)).float(), atol=1e-6)
    acc = lambda m: float(m[:, :6].diff(n=2, dim=0).abs().mean())            # noqa: E731
    assert acc(out) < 0.7 * acc(raw)
    assert torch.allclose(out[:, :6].mean(0), raw[:, :6].mean(0), atol=0.05 * float(raw[:, :6].std()))
    assert torch.equal(filter_pose(raw, 0.0), raw)
    for bad in (-1.0, float("nan"), "wide"):
        with pytest.raises(InputError, match="pose_smooth"):
            generate_motion(feats, model=model, pose_smooth=bad)


def test_sampler_trace_records_every_step_and_ends_on_the_sample(trained):
    from vasa_lite.motion.generate import check_controls, control_tokens, sample_window, window_sampler
    from vasa_lite.motion.trace import mouth_by_step

    model = trained["model"]
    feats = torch.randn(CFG.window - 3, DA, generator=torch.Generator().manual_seed(2))
    base, scales = control_tokens(model, check_controls(), "cpu"), guidance_scales(None, model.cfg)
    smp = window_sampler(model, "ddpm", 12)
    trace = []
    traced = sample_window(model, smp, feats, base, scales, torch.Generator().manual_seed(0), trace=trace)
    plain = sample_window(model, smp, feats, base, scales, torch.Generator().manual_seed(0))
    assert torch.equal(traced, plain)                                    # tracing does not change the sample
    assert [t for t, _ in trace] == smp.timesteps and torch.equal(trace[-1][1], plain)
    out = mouth_by_step("smoke", model=model, baseline=trained["baseline"], clips=2, steps=12)
    assert out["t"] == smp.timesteps and len(out["mouth_r"]) == 12 and out["clips"] == 2
    assert out["first"] == out["mouth_r"][0] and out["final"] == out["mouth_r"][-1]
    assert all(-1 <= r <= 1 for r in out["mouth_r"]) and out["regression"] is not None
    with pytest.raises(InputError, match="diffusion"):
        mouth_by_step("smoke", model=trained["baseline"])
    with pytest.raises(InputError, match="clips"):
        mouth_by_step("smoke", model=model, clips=0)


def test_audio_jaw_probe_reads_neighbouring_frames_and_checks_its_arguments():
    from vasa_lite.motion.trace import _with_context, audio_jaw_probe

    f = np.arange(12, dtype=float).reshape(6, 2)
    c = _with_context(f, 1)
    assert c.shape == (6, 6)
    assert np.array_equal(c[2], np.r_[f[1], f[2], f[3]]) and np.array_equal(c[0, :2], f[0])   # edges repeated
    out = audio_jaw_probe("smoke", context=1, train_clips=6, test_clips=2)
    assert out["clips"] == 2 and -1 <= out["mouth_r"] <= 1 and math.isfinite(out["r2"])
    assert out == audio_jaw_probe("smoke", context=1, train_clips=6, test_clips=2)          # deterministic
    with pytest.raises(InputError, match="context"):
        audio_jaw_probe("smoke", context=-1)


def test_controls_default_to_the_papers_and_change_the_motion(trained):
    model = trained["model"]
    feats = torch.randn(30, DA, generator=torch.Generator().manual_seed(1))
    kw = dict(model=model, sampler="ddim", steps=5, seed=0)
    default = generate_motion(feats, **kw)
    explicit = generate_motion(feats, gaze=(0, 0), distance=float(model.distance_mean), **kw)
    assert torch.allclose(default, explicit, atol=1e-6)                      # forward gaze, mean distance
    assert not torch.allclose(default, generate_motion(feats, gaze=(20, -10), **kw))
    assert not torch.allclose(default, generate_motion(feats, emotion="happy", **kw))


@pytest.mark.parametrize("kwargs, needle", [
    (dict(audio_features=torch.zeros(0, DA)), "shorter than one video frame"),
    (dict(audio_features=torch.zeros(10, DA + 1)), f"[T, {DA}]"),
    (dict(audio_features=torch.full((10, DA), float("nan"))), "NaN"),
    (dict(gaze=(45, 0)), "[-30, 30]"),
    (dict(gaze=(0, -25)), "gaze pitch must be in [-20, 20]"),
    (dict(gaze=3.0), "(yaw, pitch)"),
    (dict(distance=2.0), "[0.8, 1.25]"),
    (dict(emotion="bored"), "neutral, happy, sad, angry, surprised"),
    (dict(guidance={"audio": -1}), "'audio'"),
    (dict(guidance={"gaze": float("nan")}), "'gaze'"),
    (dict(sampler="euler"), "ddpm, ddim"),
])
def test_bad_generation_inputs_say_what_to_fix(trained, kwargs, needle):
    args = {"audio_features": torch.zeros(10, DA), "model": trained["model"], **kwargs}
    with pytest.raises(InputError) as err:
        generate_motion(**args)
    assert needle in str(err.value)


# ---------------------------------------------------------------------------------------------------- CLI


def test_cli_wires_motion_and_its_baseline():
    from vasa_lite.cli import COMPONENTS, _resolve, build_parser, main

    train, ev = COMPONENTS["motion"]
    assert _resolve(train) is train_motion and callable(_resolve(ev))
    args = build_parser().parse_args(["train", "motion", "--preset", "smoke", "--baseline", "regression"])
    assert args.component == "motion" and args.baseline == "regression"
    assert main(["train", "latent", "--preset", "smoke", "--baseline", "regression"]) == 2   # motion only


def test_cli_trains_a_motion_variant_with_set_and_keeps_the_shipped_one(tmp_path, capsys):
    """--set changes the motion recipe for one run (notebook 07's velocity-loss row); the variant goes to --out,
    and without --out it is refused before anything is trained or written."""
    from vasa_lite.checkpoints import load_checkpoint
    from vasa_lite.cli import main
    from vasa_lite.motion.train import checkpoint_file

    out = tmp_path / "motion_velocity.pt"
    assert main(["train", "motion", "--preset", "smoke", "--steps", "20", "--set", "velocity_weight=1",
                 "--out", str(out), "--quiet"]) == 0
    _, meta = load_checkpoint(out, component="motion", preset="smoke")
    assert meta["steps"] == 20 and meta["extra"]["config"]["velocity_weight"] == 1.0
    logged = [row for row in read_log(out) if "loss" in row]
    assert logged and all("velocity" in row for row in logged)                     # the extra term trained
    shipped = checkpoint_file("smoke")
    before = shipped.stat().st_mtime_ns if shipped.exists() else None
    capsys.readouterr()
    assert main(["train", "motion", "--preset", "smoke", "--steps", "20", "--set", "velocity_weight=1"]) == 2
    assert "--out" in capsys.readouterr().err
    assert (shipped.stat().st_mtime_ns if shipped.exists() else None) == before
    assert main(["train", "motion", "--preset", "smoke", "--set", "no_such=1", "--out", str(out)]) == 2
    assert "velocity_weight" in capsys.readouterr().err                          # names the accepted keys
    assert main(["train", "audio", "--preset", "smoke", "--set", "lr=1", "--out", str(out)]) == 2
    assert "latent, motion" in capsys.readouterr().err


def test_a_skip_variant_loads_with_its_own_parameterisation(tmp_path):
    """`--set x0_skip=true` trains the skip parameterisation; the loader rebuilds each generator as its checkpoint
    records (the shipped ones predate the switch: no skip), so both generate under the same preset."""
    from vasa_lite.cli import main
    from vasa_lite.motion.train import checkpoint_file

    out = tmp_path / "motion_skip.pt"
    assert main(["train", "motion", "--preset", "smoke", "--steps", "20", "--set", "x0_skip=true",
                 "--out", str(out), "--quiet"]) == 0
    skip, plain = load_motion("smoke", out), load_motion("smoke", checkpoint_file("smoke"))
    assert skip.x0_skip and not plain.x0_skip and skip.meta["extra"]["config"]["x0_skip"] is True
    feats = torch.randn(30, DA, generator=torch.Generator().manual_seed(0))
    a, b = (generate_motion(feats, model=m, seed=0) for m in (skip, plain))
    assert a.shape == b.shape == (30, M) and torch.isfinite(a).all() and not torch.allclose(a, b)


def test_a_variant_of_another_size_loads_at_its_own_size(tmp_path):
    """`--set layers=1 --set width=32` trains a smaller network; its checkpoint records the size, and the loader (so
    eval motion --checkpoint) rebuilds it at that size under the same preset."""
    from vasa_lite.cli import main

    out = tmp_path / "motion_small.pt"
    assert main(["train", "motion", "--preset", "smoke", "--steps", "10", "--set", "layers=1", "--set", "width=32",
                 "--out", str(out), "--quiet"]) == 0
    small = load_motion("smoke", out)
    assert len(small.encoder.layers) == 1 and small.cfg.width == 32 != CFG.width
    out2 = generate_motion(torch.randn(30, DA, generator=torch.Generator().manual_seed(0)), model=small, seed=0)
    assert out2.shape == (30, M) and torch.isfinite(out2).all()


def test_shipped_smoke_checkpoints_load():
    from vasa_lite.motion.train import checkpoint_file

    if not checkpoint_file("smoke").exists() or not checkpoint_file("smoke", "regression").exists():
        pytest.skip("smoke motion checkpoints not trained yet: vasa-lite train motion --preset smoke")
    model = load_motion("smoke")
    base = load_motion("smoke", baseline=True)
    assert isinstance(model, MotionTransformer) and not model.regression and base.regression
    out = generate_motion(torch.zeros(5, DA), model=model, sampler="ddim", steps=3)
    assert out.shape == (5, M)


def test_motion_data_depends_on_the_motion_encoders_only(tmp_path):
    """A latent checkpoint whose decoder changed keeps the motion identity; one whose dynamics encoder changed
    does not (the cached sequences and motion models are tied to what makes [z_pose, z_dyn])."""
    from vasa_lite.checkpoints import load_checkpoint, save_checkpoint
    from vasa_lite.latent import checkpoint_file as latent_file
    from vasa_lite.motion.data import encoder_identity

    state, meta = load_checkpoint(latent_file("smoke"), component="latent")

    def saved(name, change):
        s = {k: v.clone() for k, v in state.items()}
        for k in s:
            if k.startswith(change):
                s[k] += 0.01
        return save_checkpoint(tmp_path / name, s, component="latent", preset="smoke", steps=meta["steps"])

    base = encoder_identity(latent_file("smoke"))
    assert encoder_identity(saved("decoder.pt", "renderer.")) == base
    assert encoder_identity(saved("dynamics.pt", "dynamics.")) != base
    assert encoder_identity(tmp_path / "none.pt") == "missing"


def test_loading_a_generator_with_other_latent_encoders_warns(tmp_path):
    import warnings

    from vasa_lite.checkpoints import checkpoint_path, load_checkpoint, save_checkpoint

    if not (checkpoint_path("motion", "smoke").exists() and checkpoint_path("latent", "smoke").exists()):
        pytest.skip("shipped smoke checkpoints missing")
    state, meta = load_checkpoint(checkpoint_path("latent", "smoke"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")                   # the shipped pair matches: no warning
        load_motion("smoke", device="cpu")
    encoder = next(k for k in state if k.startswith("dynamics."))
    moved = save_checkpoint(tmp_path / "latent.pt", {**state, encoder: state[encoder] + 0.1}, component="latent",
                            preset="smoke", steps=meta["steps"], extra=meta["extra"])
    with pytest.warns(UserWarning, match="another latent model's motion encoders"):
        load_motion("smoke", device="cpu", latent=moved)


def test_sampling_animation_has_one_frame_per_step():
    from vasa_lite.viz import sampling_animation

    sch = NoiseSchedule(100)
    smp = DDIMSampler(sch, 5)
    target = torch.linspace(-1, 1, 10).view(1, 10, 1)
    xs, x0s = [], []

    def x0_fn(x, t):
        xs.append(x[0, :, 0].clone()); x0s.append(target[0, :, 0])
        return target

    out = smp.sample(x0_fn, (1, 10, 1), torch.Generator().manual_seed(0))
    fig = sampling_animation(smp.timesteps, torch.stack(xs), torch.stack(x0s))
    assert len(fig.frames) == 5 and len(fig.layout.sliders[0].steps) == 5
    assert np.allclose(fig.frames[2].data[0].y, xs[2].numpy()) and np.allclose(fig.frames[-1].data[1].y, out[0, :, 0])
    with pytest.raises(InputError, match="K timesteps"):
        sampling_animation(smp.timesteps[:3], torch.stack(xs), torch.stack(x0s))
