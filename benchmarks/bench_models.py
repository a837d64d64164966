"""Model benchmarks behind docs/benchmarks/models.md (``tcmbench bench``).

    .venv/bin/python benchmarks/bench_models.py [--device cpu] [--runs 5] [--warmup 2]
        [--threads N] [--json OUT] [--skip-breakdown] [--only params,latency,flops,compare]

Measures, on the current device, with random weights (nothing downloaded):

1. parameters of DBNet-R18, DBNet-R50 and TCM-DBNet (with and without the
   CLIP text encoder);
2. inference latency and images/s at 640x640 and 1024x1024 and the
   postprocessing time per image, DBNet-R18 and DBNet-R50 (plus the
   embedded checkpoint when the DBNet plugin ships one: its maps are
   trained, so its postprocessing time is the realistic one);
3. GFLOPs / GMACs at 1280x800 (DBNet-R18, DBNet-R50, TCM-DBNet);
4. the TCM-DBNet / DBNet-R50 latency ratio at 640 and 1024
   (``bench --compare-tcm``, interleaved runs);
5. where TCM-DBNet's time goes: median forward time of each part
   (CLIP trunk, attention pool, text encoder, language / visual prompt
   generators, text context decoder, neck, head) next to DBNet-R50's,
   measured with forward hooks (``--skip-breakdown`` to leave out).

Everything runs through the real CLI (``tcmbench bench ... --json``); the
script gathers the JSON files and prints markdown tables.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

# part -> module path inside a Detector (stem / trunk are derived).
PART_PATHS = {
    "backbone": "backbone",
    "layer1": "backbone.layer1",
    "layer2": "backbone.layer2",
    "layer3": "backbone.layer3",
    "layer4": "backbone.layer4",
    "attnpool": "backbone.attnpool",
    "matching": "feature_transform",
    "text_encoder": "feature_transform.text_encoder",
    "language_prompt": "feature_transform.language_prompt_generator",
    "visual_prompt": "feature_transform.visual_prompt_generator",
    "text_decoder": "feature_transform.text_context_decoder",
    "neck": "neck",
    "head": "head",
}
PARTS = [
    "everything",
    "backbone",
    "stem",
    "layer1",
    "layer2",
    "layer3",
    "layer4",
    "trunk",
    "attnpool",
    "matching",
    "text_encoder",
    "language_prompt",
    "visual_prompt",
    "text_decoder",
    "neck",
    "head",
]


def cli_json(args: list[str], out: Path) -> dict[str, Any]:
    """Run ``tcmbench <args> --json out`` in-process and read the JSON."""
    from tcmbench.cli import main

    argv = [*args, "--json", str(out)]
    print("$ tcmbench " + " ".join(argv), file=sys.stderr, flush=True)
    t0 = time.monotonic()
    try:
        main(argv)
    except SystemExit as exc:
        if exc.code:
            raise RuntimeError(f"tcmbench {' '.join(argv)} exited {exc.code}") from None
    print(f"  ({time.monotonic() - t0:.0f} s)", file=sys.stderr, flush=True)
    return json.loads(out.read_text())


def part_modules(model: Any) -> dict[str, Any]:
    """part -> module for the breakdown (parts a model lacks are left out)."""
    modules = dict(model.named_modules())
    return {
        part: modules[path] for part, path in PART_PATHS.items() if modules.get(path) is not None
    }


def breakdown(
    models: dict[str, tuple[Any, Any]], warmup: int, runs: int
) -> dict[str, dict[str, dict[str, float]]]:
    """Per model and part: median ms per forward (forward pre/post hooks)
    and GMACs. ``models[label] = (model, inputs)``; the models alternate
    run by run (A B, B A...) so load changes of a shared machine hit both.
    ``stem`` = backbone minus its layers and attention pool; ``trunk`` =
    backbone minus the attention pool."""
    import torch

    from tcmbench.inference.profiling import flops_by_module

    times: dict[str, dict[str, list[float]]] = {}
    totals: dict[str, list[float]] = {label: [] for label in models}
    current: dict[str, float] = {}
    starts: dict[str, float] = {}
    handles = []
    for label, (model, _) in models.items():
        parts = part_modules(model)
        times[label] = {name: [] for name in parts}
        for name, module in parts.items():

            def pre(_m: Any, _a: Any, key: str = f"{label}/{name}") -> None:
                starts[key] = time.perf_counter()

            def post(_m: Any, _a: Any, _o: Any, key: str = f"{label}/{name}") -> None:
                current[key] = current.get(key, 0.0) + (time.perf_counter() - starts[key]) * 1000.0

            handles.append(module.register_forward_pre_hook(pre))
            handles.append(module.register_forward_hook(post))
    labels = list(models)
    try:
        with torch.inference_mode():
            for i in range(warmup + runs):
                for label in labels if i % 2 == 0 else labels[::-1]:
                    model, inputs = models[label]
                    current.clear()
                    t0 = time.perf_counter()
                    model(inputs)
                    elapsed = (time.perf_counter() - t0) * 1000.0
                    if i >= warmup:
                        totals[label].append(elapsed)
                        for name in times[label]:
                            times[label][name].append(current.get(f"{label}/{name}", 0.0))
    finally:
        for h in handles:
            h.remove()
    out: dict[str, dict[str, dict[str, float]]] = {}
    for label, (model, inputs) in models.items():
        t = times[label]
        flops = flops_by_module(model, 0, 0, inputs=inputs)
        ms = {
            "everything": statistics.median(totals[label]),
            **{n: statistics.median(v) for n, v in t.items()},
        }
        gmacs = {
            "everything": flops[""] / 2e9,
            **{n: flops.get(PART_PATHS[n], 0.0) / 2e9 for n in t},
        }
        layers = [f"layer{k}" for k in range(1, 5)]
        n_runs = len(totals[label])
        trunk = [
            t["backbone"][k] - (t["attnpool"][k] if "attnpool" in t else 0.0) for k in range(n_runs)
        ]
        stem = [trunk[k] - sum(t[layer][k] for layer in layers) for k in range(n_runs)]
        ms["trunk"], ms["stem"] = statistics.median(trunk), statistics.median(stem)
        gmacs["trunk"] = gmacs["backbone"] - gmacs.get("attnpool", 0.0)
        gmacs["stem"] = gmacs["trunk"] - sum(gmacs[layer] for layer in layers)
        out[label] = {part: {"ms": ms[part], "gmacs": gmacs[part]} for part in ms}
    return out


def run_breakdown(resolutions: list[int], device: str, warmup: int, runs: int) -> dict[str, Any]:
    """{resolution label: {model: {part: {ms, gmacs}}}} for DBNet-R50 and TCM-DBNet."""
    import torch

    from tcmbench.commands.bench import build_for_bench, recipe_for_model
    from tcmbench.contract.registry import get_detector
    from tcmbench.contract.spec import TCMConfig
    from tcmbench.data.transforms import normalization
    from tcmbench.inference.profiling import bench_batch

    spec = get_detector("dbnet")
    recipe = spec.recipe(None)
    models = {}
    for label, tcm in (("DBNet-R50", None), ("TCM-DBNet", TCMConfig(clip_pretrained=None))):
        model, config = build_for_bench(spec, recipe, "resnet50", tcm)
        models[label] = (model.to(device).eval(), recipe_for_model(recipe, config))
    out: dict[str, Any] = {}
    for res in resolutions:
        batch = {}
        for label, (model, rec) in models.items():
            mean, std = normalization(rec)
            x, _ = bench_batch(res, res, 1, mean=mean, std=std, device=torch.device(device))
            batch[label] = (model, x)
        print(f"breakdown at {res}", file=sys.stderr, flush=True)
        out[f"{res}x{res}"] = breakdown(batch, warmup, runs)
    return out


def fmt(v: Any, digits: int = 1) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


def report(doc: dict[str, Any]) -> str:
    lines: list[str] = []
    env = doc.get("environment", {})
    lines.append(
        f"Machine: {env.get('gpu') or env.get('cpu')}, {env.get('threads')} torch threads, "
        f"device {env.get('device')}, torch {env.get('torch')}; {doc['date']}"
    )
    if "params" in doc:
        lines += ["", "| model | params | params without text encoder |", "|---|---|---|"]
        for name, p in doc["params"].items():
            lines.append(
                f"| {name} | {p['params'] / 1e6:.2f}M | "
                f"{fmt(p.get('params_without_text_encoder', p['params']) / 1e6, 2)}M |"
            )
    if "latency" in doc:
        lines += [
            "",
            "| model | resolution | GFLOPs | latency ms | images/s | postprocess ms/img | detections/img |",
            "|---|---|---|---|---|---|---|",
        ]
        for name, d in doc["latency"].items():
            for r in d["results"]:
                lines.append(
                    f"| {name} | {r['resolution']} | {fmt(r.get('gflops'))} | {fmt(r['latency_ms'])} | "
                    f"{fmt(r['images_per_s'], 2)} | {fmt(r['postprocess_ms'], 2)} | "
                    f"{fmt(r['detections_per_image'], 1)} |"
                )
    if "flops" in doc:
        lines += ["", "| model | resolution | GFLOPs | GMACs |", "|---|---|---|---|"]
        for name, d in doc["flops"].items():
            for r in d["results"]:
                lines.append(
                    f"| {name} | {r['resolution']} | {fmt(r['gflops'])} | {fmt(r['gmacs'])} |"
                )
    if "compare" in doc:
        plain, tcm = doc["compare"]["models"]
        header = (
            "| resolution | DBNet-R50 ms (median / fastest) | TCM-DBNet ms (median / fastest) | "
            "TCM / DBNet-R50 (medians) | (fastest runs) |"
        )
        lines += ["", header, "|---|---|---|---|---|"]
        for p, t in zip(plain["results"], tcm["results"], strict=True):
            ratio = doc["compare"]["tcm_latency_ratio"][p["resolution"]]
            ratio_min = doc["compare"]["tcm_latency_ratio_min"][p["resolution"]]
            lines.append(
                f"| {p['resolution']} | {fmt(p['latency_ms'])} / {fmt(p['latency_ms_min'])} | "
                f"{fmt(t['latency_ms'])} / {fmt(t['latency_ms_min'])} | {ratio:.2f}x | {ratio_min:.2f}x |"
            )
    if "breakdown" in doc:
        for res, per_model in doc["breakdown"].items():
            names = list(per_model)
            lines += [
                "",
                f"Forward time (median ms) and GMACs by part at {res}:",
                "",
                "| part | " + " | ".join(f"{n} ms | {n} GMACs" for n in names) + " |",
                "|---" * (2 * len(names) + 1) + "|",
            ]
            for part in PARTS:
                if any(part in per_model[n] for n in names):
                    cells = []
                    for n in names:
                        v = per_model[n].get(part)
                        cells += [fmt(v["ms"]) if v else "-", fmt(v["gmacs"], 2) if v else "-"]
                    lines.append(f"| {part} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument(
        "--compare-runs",
        type=int,
        default=None,
        help="Timed runs of the TCM comparison (default --runs); more runs steady the ratio.",
    )
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--json", dest="json_out", default=None, help="Write all figures here.")
    ap.add_argument(
        "--only",
        default="params,latency,flops,compare,breakdown",
        help="Comma-separated subset of params,latency,flops,compare,breakdown.",
    )
    ap.add_argument("--skip-breakdown", action="store_true")
    args = ap.parse_args()
    only = set(args.only.split(","))
    if args.skip_breakdown:
        only.discard("breakdown")
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)

    common = ["--device", args.device, "--no-progress"]
    timing = ["--runs", str(args.runs), "--warmup", str(args.warmup)]
    doc: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d"),
        "runs": args.runs,
        "warmup": args.warmup,
    }
    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        if "params" in only:
            doc["params"] = {}
            for name, extra in (
                ("DBNet-R18", ["--backbone", "resnet18"]),
                ("DBNet-R50", ["--backbone", "resnet50"]),
                ("TCM-DBNet", ["--tcm"]),
            ):
                d = cli_json(
                    ["bench", "--plugin", "dbnet", *extra, "--params-only", *common], t / "p.json"
                )
                doc["params"][name] = {
                    k: d[k] for k in ("params", "params_without_text_encoder") if k in d
                }
                doc["environment"] = d["environment"]
        if "latency" in only:
            doc["latency"] = {}
            for name, backbone in (("DBNet-R18", "resnet18"), ("DBNet-R50", "resnet50")):
                d = cli_json(
                    [
                        "bench",
                        "--plugin",
                        "dbnet",
                        "--backbone",
                        backbone,
                        "--resolution",
                        "640,1024",
                        *timing,
                        *common,
                    ],
                    t / "l.json",
                )
                doc["latency"][name] = d
                doc["environment"] = d["environment"]
            from tcmbench.commands.evaluate import embedded_weights
            from tcmbench.contract.registry import get_detector

            shipped = embedded_weights(get_detector("dbnet"))
            if shipped is not None:
                d = cli_json(
                    [
                        "bench",
                        "--plugin",
                        "dbnet",
                        "--weights",
                        str(shipped),
                        "--resolution",
                        "640,1024",
                        *timing,
                        *common,
                    ],
                    t / "w.json",
                )
                doc["latency"][f"embedded weights ({d['architecture']['backbone']}, trained)"] = d
        if "flops" in only:
            doc["flops"] = {}
            for name, extra in (
                ("DBNet-R18", ["--backbone", "resnet18"]),
                ("DBNet-R50", ["--backbone", "resnet50"]),
                ("TCM-DBNet", ["--tcm"]),
            ):
                doc["flops"][name] = cli_json(
                    [
                        "bench",
                        "--plugin",
                        "dbnet",
                        *extra,
                        "--resolution",
                        "640,1280x800",
                        "--runs",
                        "0",
                        *common,
                    ],
                    t / "f.json",
                )
        if "compare" in only:
            compare_timing = [
                "--runs",
                str(args.compare_runs or args.runs),
                "--warmup",
                str(args.warmup),
            ]
            d = cli_json(
                [
                    "bench",
                    "--plugin",
                    "dbnet",
                    "--compare-tcm",
                    "--resolution",
                    "640,1024",
                    "--no-flops",
                    *compare_timing,
                    *common,
                ],
                t / "c.json",
            )
            doc["compare"] = d
            doc["environment"] = d["environment"]
    if "environment" not in doc:
        from tcmbench.inference.profiling import environment

        doc["environment"] = environment(args.device)
    if "breakdown" in only:
        doc["breakdown"] = run_breakdown(
            [640, 1024], args.device, max(1, args.warmup), max(3, args.runs)
        )
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(doc, indent=2) + "\n")
    print(report(doc))


if __name__ == "__main__":
    main()
