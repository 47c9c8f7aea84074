"""How much of a crop step's position its CPC feature z_t gives away, with and without context.

A causal encoder whose receptive field (253 steps at depth 6) exceeds the 128-step training crop
sees zero padding at the crop's first steps, so z_t encodes t, and a negative from another step
can be rejected by position alone. With ``--crop-context`` the encoder also reads the series'
own steps before the crop. This measures the shortcut directly: a ridge probe (scikit-learn's
RidgeCV) reads the crop position t from z_t; R^2 on held-out series' crops.

Rows: the encoder untrained and after pretraining (the default configuration, or without
context), each read on crops without context and with it. Crops whose context covers the whole
receptive field (start >= receptive field - 1) are also scored alone: there no crop step sees
padding, and what remains is what z knows of t from content.

    python bench/position.py [--data OSULeaf] [--seeds 0,1,2]

Writes bench/results/position.{json,md}.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from sklearn.linear_model import RidgeCV
from sklearn.metrics import r2_score

from seqrep.data.series import load_normalised
from seqrep.loops.pretrain import PretrainConfig, build_from_config, crop_in_context, pretrain
from seqrep.methods.base import take_steps
from seqrep.methods.cpc import BidirectionalCPC

OUT = Path(__file__).parent / "results"


def crop_features(
    encoder: torch.nn.Module, values: np.ndarray, lengths: np.ndarray, context: int, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """z_t [N, D], the crop position t [N] and whether the crop's context covers the receptive
    field [N], for 8 crops of each series (the same crops for any ``context``)."""
    feats, pos, clean = [], [], []
    v, ln = torch.from_numpy(values), torch.from_numpy(lengths)
    rf = encoder.receptive_field
    for rep in range(8):
        gen = torch.Generator().manual_seed(seed * 100 + rep)
        x, total, margins = crop_in_context(v, ln, 128, context, gen)
        gen = torch.Generator().manual_seed(seed * 100 + rep)
        _, _, full = crop_in_context(v, ln, 128, rf - 1, gen)  # the start, from its context
        crop = total - margins.sum(1)
        with torch.no_grad():
            z = encoder(torch.nan_to_num(x))
            z = take_steps(z, margins[:, 0], int(crop.max()))
        for b in range(len(values)):
            n = int(crop[b])
            feats.append(z[b, :n].numpy())
            pos.append(np.arange(n))
            clean.append(np.full(n, bool(full[b, 0] >= rf - 1)))
    return np.concatenate(feats), np.concatenate(pos), np.concatenate(clean)


def position_r2(encoder: torch.nn.Module, data: str, context: int, seed: int) -> dict[str, float]:
    train, test = load_normalised(data)
    ztr, ttr, _ = crop_features(encoder, train.values, train.lengths, context, seed)
    zte, tte, clean = crop_features(encoder, test.values, test.lengths, context, seed + 1)
    probe = RidgeCV(alphas=np.logspace(-3, 3, 7)).fit(ztr, ttr)
    pred = probe.predict(zte)
    row = {"r2_all_crops": float(r2_score(tte, pred))}
    if clean.any():
        row["r2_context_covers_field"] = float(r2_score(tte[clean], pred[clean]))
        row["share_covered"] = float(clean.mean())
    return row


def forward_encoder(method: torch.nn.Module) -> torch.nn.Module:
    return method.forward_cpc.encoder if isinstance(method, BidirectionalCPC) else method.encoder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="OSULeaf")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    train, _ = load_normalised(args.data)
    rows = []
    for seed in (int(s) for s in args.seeds.split(",")):
        base = PretrainConfig(data=args.data, seed=seed)
        torch.manual_seed(seed)
        untrained = forward_encoder(build_from_config(base, train.num_channels)).eval()
        encoders = {"untrained": untrained}
        for name, cfg in (
            ("pretrained with context", base),
            ("pretrained without context", replace(base, crop_context=False)),
        ):
            method, _ = pretrain(cfg, train, quiet=True)
            encoders[name] = forward_encoder(method).eval()
        rf = untrained.receptive_field
        for name, enc in encoders.items():
            for read, context in (("crop alone", 0), ("crop + context", rf - 1)):
                r = position_r2(enc, args.data, context, seed)
                rows.append({"seed": seed, "encoder": name, "read": read, **r})
                print(rows[-1])
    OUT.mkdir(exist_ok=True)
    (OUT / "position.json").write_text(json.dumps(rows, indent=1) + "\n")
    lines = [
        f"# Crop position read from z_t ({args.data}, ridge probe R^2 on test series' crops, "
        f"seeds {args.seeds})",
        "",
        "| encoder | encoder reads | R^2, all crops | R^2, crops whose context covers the field |",
        "|---|---|---|---|",
    ]
    for name in encoders:
        for read in ("crop alone", "crop + context"):
            sel = [r for r in rows if r["encoder"] == name and r["read"] == read]
            a = np.array([r["r2_all_crops"] for r in sel])
            c = np.array([r.get("r2_context_covers_field", np.nan) for r in sel])
            lines.append(
                f"| {name} | {read} | {a.mean():.3f} ± {a.std():.3f} | "
                f"{np.nanmean(c):.3f} ± {np.nanstd(c):.3f} |"
            )
    (OUT / "position.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
