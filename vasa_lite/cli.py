"""The `vasa-lite` command. Every subcommand takes --preset and --seed; errors meant for people are printed as
one line on stderr with exit status 2, never as a traceback."""
from __future__ import annotations

import argparse
import json
import os
import sys

from vasa_lite.errors import InputError


def _common(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    p.add_argument("--preset", default="cpu", help="smoke (CI), cpu (laptop) or gpu (Colab and bigger)")
    p.add_argument("--seed", type=int, default=0, help="seed for python, numpy and torch")
    p.add_argument("--device", default=None, help="cuda, mps or cpu (default: the best one present)")
    return p


# Trainable components: name -> ("module:train function", "module:eval function"). A new chapter adds one line;
# modules are imported only when their command runs, so `vasa-lite --help` stays fast.
COMPONENTS = {
    "audio": ("vasa_lite.audio:train_audio", "vasa_lite.audio:eval_audio"),
    "capp": ("vasa_lite.instruments.capp:train_capp", "vasa_lite.instruments.capp:eval_capp"),
    "syncnet": ("vasa_lite.instruments.syncnet:train_syncnet", "vasa_lite.instruments.syncnet:eval_syncnet"),
    "attributes": ("vasa_lite.instruments.attributes:train_attributes",
                   "vasa_lite.instruments.attributes:eval_attributes"),
    "fvd": ("vasa_lite.instruments.fvd:train_fvd", "vasa_lite.instruments.fvd:eval_fvd"),
    "identity": ("vasa_lite.instruments.identity:train_identity", "vasa_lite.instruments.identity:eval_identity"),
    # all four measuring networks at once; eval reports every target figure of the instruments
    "instruments": ("vasa_lite.metrics:train_instruments", "vasa_lite.metrics:eval_instruments"),
    "latent": ("vasa_lite.latent.train:train_latent", "vasa_lite.latent.evaluate:eval_latent"),
    # the diffusion motion generator; --baseline regression trains the regression baseline instead
    "motion": ("vasa_lite.motion.train:train_motion", "vasa_lite.motion.evaluate:eval_motion"),
}
# Evaluations of the whole pipeline, with nothing to train of their own.
EVAL_ONLY = {"ood": "vasa_lite.ood:eval_ood", "all": "vasa_lite.table:eval_all"}
# Components that can also learn from a folder of real talking videos (--data DIR) and start from a checkpoint
# (--init); and those whose training takes config changes (--set KEY=VALUE).
TAKES_DATA = {"latent"}
TAKES_SET = {"latent", "motion"}


def _resolve(spec: str):
    import importlib

    module, name = spec.split(":")
    return getattr(importlib.import_module(module), name)


def _threads(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    p.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads (default: torch's choice; use 1 on a shared machine)")
    return p


def _controls(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    p.add_argument("--gaze", nargs=2, type=float, default=None, metavar=("YAW", "PITCH"),
                   help="main gaze direction in degrees (default 0 0: at the camera)")
    p.add_argument("--distance", type=float, default=None, help="head distance in [0.8, 1.25] (default: the mean)")
    p.add_argument("--emotion", default=None, help="neutral, happy, sad, angry or surprised (default: none)")
    p.add_argument("--intensity", type=float, default=None, help="strength of --emotion in [0, 1] (default 1)")
    p.add_argument("--guidance-audio", type=float, default=None, help="CFG scale of the audio (default 0.5)")
    p.add_argument("--guidance-gaze", type=float, default=None, help="CFG scale of the gaze (default 1.0)")
    return p


def _control_args(args) -> dict:
    """The controls of demo, animate and stream as keyword arguments (gaze, distance, emotion, guidance)."""
    g = {k: v for k, v in (("audio", args.guidance_audio), ("gaze", args.guidance_gaze)) if v is not None}
    if args.intensity is not None and args.emotion is None:
        raise InputError("--intensity sets the strength of an --emotion; give --emotion too")
    emotion = (args.emotion, args.intensity) if args.intensity is not None else args.emotion
    return {"gaze": tuple(args.gaze) if args.gaze else None, "distance": args.distance, "emotion": emotion,
            "guidance": g or None}


def _speech(args):
    """--text spoken by espeak-ng, or the --audio file as given."""
    if args.text is None:
        return args.audio
    from vasa_lite.demo import speech_of

    return speech_of(args.text, args.lang)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vasa-lite", description="VASA-1 rebuilt at small scale.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = _threads(_common(sub.add_parser(
        "demo", help="the main job: a talking-face mp4 with sound from the built-in portrait and sentence")))
    p.add_argument("--out", default=None, help="output mp4 (default: outputs/demo.mp4)")
    p.add_argument("--text", default=None, help="sentence to speak instead of the built-in one")
    p.add_argument("--lang", default="en", help="language of --text (see `vasa-lite world languages`)")
    p.add_argument("--image", default="actor", help="the portrait (default: the world's default actor)")
    _controls(p)
    p.add_argument("--quiet", action="store_true", help="no progress bar")

    _common(sub.add_parser("doctor", help="print the environment: device, versions, ffmpeg, espeak-ng"))

    p = _threads(_common(sub.add_parser(
        "animate", help="a talking-face mp4 with sound from one portrait and one speech clip; prints JSON")))
    p.add_argument("--image", required=True,
                   help="the portrait: an image file, grace_hopper, astronaut, actor or actor:N (a world actor)")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--audio", help="the speech: wav, mp3, m4a, flac... (anything ffmpeg reads)")
    src.add_argument("--text", help="a sentence to speak with espeak-ng instead of --audio")
    p.add_argument("--lang", default="en", help="language of --text (see `vasa-lite world languages`)")
    p.add_argument("--out", required=True, help="the video to write (.mp4)")
    _controls(p)
    p.add_argument("--steps", type=int, default=None, help="sampling steps (default 50 DDPM, 10 DDIM)")
    p.add_argument("--sampler", default="ddpm", help="ddpm (the paper's) or ddim (faster)")
    p.add_argument("--pose", default="relative", help="relative (to the portrait's pose, default) or absolute")
    p.add_argument("--quiet", action="store_true", help="no progress bar")

    p = _threads(_common(sub.add_parser(
        "stream", help="stream a portrait speaking an audio file in real time: live fps and latency, then an mp4")))
    p.add_argument("--image", default="actor", help="the portrait: an image file, grace_hopper, astronaut, actor or "
                                                  "actor:N (default: the world's default actor)")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--audio", help="the speech file, fed in 40 ms chunks as a live source would send it")
    src.add_argument("--text", help="a sentence to speak with espeak-ng instead of --audio")
    p.add_argument("--lang", default="en", help="language of --text (see `vasa-lite world languages`)")
    p.add_argument("--out", default="outputs/stream.mp4", help="the video to write (.mp4, default outputs/stream.mp4)")
    _controls(p)
    p.add_argument("--steps", type=int, default=None, help="sampling steps per window (default: the preset's streaming steps)")
    p.add_argument("--sampler", default=None, help="ddim (default for streaming) or ddpm")
    p.add_argument("--hop", type=int, default=None, help="frames per motion window (default: the preset's)")
    p.add_argument("--playout-ms", type=float, default=None,
                   help="ms the player waits after the first frame is ready before showing it (default: the preset's)")
    p.add_argument("--as-fast-as-possible", dest="realtime", action="store_false",
                   help="push the audio as fast as the session takes it instead of in real time")

    p = sub.add_parser("world", help="the talking-head world: build the dataset, list languages")
    wsub = p.add_subparsers(dest="world_command", required=True, metavar="ACTION")
    b = _common(wsub.add_parser("build", help="render and cache the preset's dataset (resumable)"))
    b.add_argument("--root", default=None, help="cache folder (default: data/cache/world_<preset>)")
    b.add_argument("--splits", default="train,val,test", help="comma-separated splits to build")
    _common(wsub.add_parser("languages", help="list the languages and voices speech can use"))

    from vasa_lite.bench import BENCHES

    p = _threads(_common(sub.add_parser("bench", help="measure speed; prints JSON")))
    p.add_argument("target", choices=sorted(BENCHES), help="what to measure")
    p.add_argument("--frames", type=int, default=None, help="frames per measurement")

    p = _threads(_common(sub.add_parser("train", help="train a component; writes data/checkpoints/<component>_<preset>.pt")))
    p.add_argument("component", choices=sorted(COMPONENTS) + ["ablations", "all"],
                   help="what to train; all: every stage the pipeline needs, in order, resumable; ablations: the "
                        "models of eval all's ablation rows")
    p.add_argument("--steps", type=int, default=None, help="optimiser steps (default: the preset's)")
    p.add_argument("--out", default=None, help="checkpoint path (default: data/checkpoints/<component>_<preset>.pt)")
    p.add_argument("--no-resume", dest="resume", action="store_false",
                   help="start from scratch even if an interrupted run left a .resume.pt")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--data", default=None,
                   help="a folder of real talking videos to learn from instead of the world (latent only)")
    p.add_argument("--init", default=None, help="start from this checkpoint of the same preset (latent only)")
    p.add_argument("--fresh", action="append", default=[], metavar="PART",
                   help="with --init: a part that starts anew, e.g. dynamics (latent only; repeatable)")
    p.add_argument("--freeze", action="append", default=[], metavar="PART",
                   help="a part that keeps its weights, e.g. pose (latent only; repeatable)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="change one setting of the component's config for this run, e.g. --set self_pairs=0.25 "
                        "or --set velocity_weight=1 (latent and motion; with --out; repeatable)")
    p.add_argument("--baseline", default=None, choices=["regression"],
                   help="train a baseline instead of the diffusion model: regression (motion only; writes "
                        "data/checkpoints/regression_<preset>.pt)")
    p.add_argument("--features", default=None, choices=["encoder", "mel"],
                   help="audio features of the motion generator: encoder (the pretrained audio encoder, default) or "
                        "mel (generic log-mel features, an ablation; writes data/checkpoints/motion_mel_<preset>.pt)")

    p = _threads(_common(sub.add_parser("eval", help="evaluate a trained component; prints JSON")))
    p.add_argument("component", choices=sorted(COMPONENTS) + sorted(EVAL_ONLY),
                   help="what to evaluate; ood: the pipeline on out-of-distribution inputs (notebook 09); all: the "
                        "paper's table at course scale (notebook 07), also written to figures/eval_all_<preset>.json "
                        "and .md")
    p.add_argument("--checkpoint", default=None, help="checkpoint path (default: the shipped one of the preset; "
                                                      "for ood, a latent checkpoint)")
    p.add_argument("--limit", type=int, default=None, help="use only the first N clips of each split")
    p.add_argument("--out", default=None, help="all and ood: where to write the JSON (and the .md table beside it; "
                                               "for all, default figures/eval_all_<preset>.json)")
    p.add_argument("--test-clips", type=int, default=None,
                   help="all: measure on this many test clips only (no val clips); a test split with fewer clips "
                        "grows by further held-out test actors")

    p = _common(sub.add_parser("inspect", help="check an image, audio or video file the course can use; prints JSON"))
    p.add_argument("path", help="a portrait image, an audio file or a video")

    p = sub.add_parser("notebooks", help="keep notebooks clean: strip outputs, keep tags")
    p.add_argument("action", choices=["clean", "check"])
    p.add_argument("paths", nargs="*", help="notebooks (default: notebooks/*.ipynb)")
    return parser


def _cmd_doctor(args) -> int:
    from vasa_lite.envcheck import environment_report

    print(json.dumps(environment_report(), indent=2))
    return 0


def _cmd_demo(args) -> int:
    from vasa_lite.demo import run_demo

    _set_threads(args)
    result = run_demo(out=args.out, preset=args.preset, seed=args.seed, text=args.text, lang=args.lang,
                      device=args.device, progress=not args.quiet, portrait=args.image, **_control_args(args))
    print(json.dumps({"out": str(result.path), **result.summary()}, indent=2))
    return 0


def _cmd_animate(args) -> int:
    from vasa_lite.media import check_video_path
    from vasa_lite.motion.animate import animate

    check_video_path(args.out)                      # before any work: an unwritable path fails at once
    _set_threads(args)
    result = animate(args.image, _speech(args), steps=args.steps, seed=args.seed, sampler=args.sampler,
                     preset=args.preset, device=args.device, progress=not args.quiet, pose=args.pose,
                     **_control_args(args))
    path = result.save(args.out)
    print(json.dumps({"out": str(path), **result.summary()}, indent=2))
    return 0


def _cmd_stream(args) -> int:
    from vasa_lite.media import check_video_path
    from vasa_lite.stream import StreamingSession, stream_audio

    out = check_video_path(args.out)
    _set_threads(args)
    from vasa_lite.audio import prepare_audio

    audio = prepare_audio(_speech(args))            # bad audio fails before any model loads
    session = StreamingSession(args.image, steps=args.steps, sampler=args.sampler, hop=args.hop, seed=args.seed,
                               preset=args.preset, device=args.device, playout_ms=args.playout_ms,
                               **_control_args(args))
    done = {"n": 0}

    def live(frames, now_ms):                       # one updating line: frames so far, their rate, the latency
        done["n"] += len(frames)
        first = done.setdefault("first", now_ms)
        # frames per second since the first frame (windows arrive a few frames at once, so wait a second)
        rate = f"{(done['n'] - len(frames)) / (now_ms - first) * 1000.0:5.1f}" if now_ms - first >= 1000 else "  ..."
        print(f"\rframes {done['n']:5d}  fps {rate}  first frame after {first:6.1f} ms", end="", file=sys.stderr,
              flush=True)

    report = stream_audio(session, audio, realtime=args.realtime, on_frames=live)
    print(file=sys.stderr)
    summary = report.summary()
    if len(report.frames):
        report.save(out)
        summary["out"] = str(out)
    else:
        summary["out"] = None
    if report.interrupted:
        print(f"vasa-lite: stopped; kept the {len(report.frames)} frames made so far", file=sys.stderr)
    print(json.dumps(summary, indent=2))
    return 130 if report.interrupted else 0


def _cmd_world(args) -> int:
    if args.world_command == "languages":
        from vasa_lite.world.speech import LANGUAGES, VOICES

        for code, voice in LANGUAGES.items():
            print(f"{code:8s} espeak voice {voice}")
        print("voices:", ", ".join(VOICES))
        return 0
    from vasa_lite.world.dataset import build_world

    splits = [s.strip() for s in args.splits.split(",") if s.strip()]
    summary = build_world(args.preset, root=args.root, splits=splits, seed=args.seed, progress=True)
    print(json.dumps(summary, indent=2))
    return 0


def _set_threads(args) -> None:
    if getattr(args, "threads", None):
        import torch

        torch.set_num_threads(max(1, args.threads))


def _cmd_bench(args) -> int:
    from vasa_lite.bench import run_bench

    _set_threads(args)
    print(json.dumps(run_bench(args.target, preset=args.preset, seed=args.seed, device=args.device,
                               frames=args.frames), indent=2))
    return 0


def _parse_overrides(component: str, items: list) -> dict:
    """--set KEY=VALUE pairs -> typed overrides of the component's config fields (an InputError names the keys)."""
    import dataclasses

    from vasa_lite.config import PRESETS

    fields = {f.name: f for f in dataclasses.fields(getattr(PRESETS["cpu"], component))}
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or key not in fields:
            raise InputError(f"--set wants KEY=VALUE with KEY one of: {', '.join(fields)}; got '{item}'")
        kind = type(getattr(getattr(PRESETS["cpu"], component), key))
        try:
            out[key] = (value.lower() in ("1", "true", "yes")) if kind is bool else kind(value)
        except ValueError:
            raise InputError(f"--set {key}: '{value}' is not a {kind.__name__}") from None
    return out


def _cmd_train(args) -> int:
    _set_threads(args)
    train = _resolve({"all": "vasa_lite.pipeline:train_all", "ablations": "vasa_lite.pipeline:train_ablations"}.get(
        args.component) or COMPONENTS[args.component][0])
    kwargs = {}
    for opt in ("data", "init", "overrides", "fresh", "freeze"):
        if getattr(args, opt):
            takes = TAKES_SET if opt == "overrides" else TAKES_DATA
            if args.component not in takes:
                raise InputError(f"--{'set' if opt == 'overrides' else opt} works with: {', '.join(sorted(takes))}")
            kwargs[opt] = _parse_overrides(args.component, args.overrides) if opt == "overrides" else getattr(args, opt)
    if args.overrides and not args.out:
        # a changed recipe is a variant: it must not replace (or resume into) the preset's own checkpoint
        raise InputError(f"--set trains a variant of the {args.component} recipe: give --out PATH for it, e.g. "
                         f"--out outputs/{args.component}_variant.pt, so data/checkpoints keeps the shipped model")
    if args.baseline:
        if args.component != "motion":
            raise InputError("--baseline works with: motion")
        kwargs["baseline"] = args.baseline
    if args.features:
        if args.component != "motion":
            raise InputError("--features works with: motion")
        kwargs["features"] = args.features
    summary = train(preset=args.preset, seed=args.seed, device=args.device, steps=args.steps, resume=args.resume,
                    out=args.out, progress=not args.quiet, **kwargs)
    from vasa_lite.training import dist_info

    if dist_info()[0] == 0:                         # under torchrun, one summary, from rank 0
        print(json.dumps(summary, indent=2, default=str))
    return 0


def _cmd_eval(args) -> int:
    _set_threads(args)
    evaluate = _resolve(EVAL_ONLY[args.component] if args.component in EVAL_ONLY else COMPONENTS[args.component][1])
    kwargs = {}
    if args.component == "all":
        from vasa_lite.config import get_preset
        from vasa_lite.paths import FIGURES_DIR

        kwargs["out_json"] = args.out or FIGURES_DIR / f"eval_all_{get_preset(args.preset).name}.json"
        kwargs["test_clips"] = args.test_clips
    elif args.component == "ood" and args.test_clips is None:
        kwargs["out_json"] = args.out
    elif args.out or args.test_clips is not None:
        raise InputError("--out works with: eval all, eval ood; --test-clips with: eval all")
    print(json.dumps(evaluate(preset=args.preset, seed=args.seed, device=args.device, checkpoint=args.checkpoint,
                              limit=args.limit, **kwargs), indent=2))
    return 0


def _cmd_inspect(args) -> int:
    from vasa_lite.inspect_media import inspect_file

    print(json.dumps(inspect_file(args.path), indent=2))
    return 0


def _cmd_notebooks(args) -> int:
    from vasa_lite.nbtools import check_notebook, clean_notebook, notebook_paths

    paths = args.paths or notebook_paths()
    if args.action == "clean":
        for path in paths:
            print(("cleaned " if clean_notebook(path) else "clean   ") + str(path))
        return 0
    problems = [p for path in paths for p in check_notebook(path)]
    print("\n".join(problems) if problems else f"{len(paths)} notebooks clean")
    return 1 if problems else 0


COMMANDS = {"demo": _cmd_demo, "doctor": _cmd_doctor, "animate": _cmd_animate, "stream": _cmd_stream,
            "world": _cmd_world,
            "bench": _cmd_bench, "train": _cmd_train, "eval": _cmd_eval, "inspect": _cmd_inspect,
            "notebooks": _cmd_notebooks}


def main(argv=None) -> int:
    from vasa_lite.errors import VasaError

    args = build_parser().parse_args(argv)
    try:
        if hasattr(args, "preset"):
            from vasa_lite.config import get_preset

            get_preset(args.preset)  # fail fast, before any slow import or work
        return COMMANDS[args.command](args)
    except VasaError as exc:
        print(f"vasa-lite: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("vasa-lite: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug, not bad input: one line, and the traceback only on request
        if os.environ.get("VASA_LITE_DEBUG"):
            raise
        print(f"vasa-lite: unexpected error: {type(exc).__name__}: {exc} "
              "(set VASA_LITE_DEBUG=1 to see the traceback, and please report it)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
