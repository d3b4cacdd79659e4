"""PNG plots of an export (matplotlib, Agg backend; no display needed).

Each function takes what :func:`fame_jax.export.export_run` computed and
writes one small PNG; :func:`plot_export` writes all that apply and returns
their file names.
"""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np


def _plt():
  import matplotlib
  matplotlib.use("Agg")  # Headless: tests and servers have no display.
  import matplotlib.pyplot as plt
  return plt


def _heatmap(ax, m: np.ndarray, xlabels, ylabels, fmt: str = "{:.2f}", cmap: str = "viridis"):
  im = ax.imshow(m, cmap=cmap, aspect="auto")
  ax.set_xticks(range(len(xlabels)), xlabels)
  ax.set_yticks(range(len(ylabels)), ylabels)
  finite = m[np.isfinite(m)]
  mid = (finite.max() + finite.min()) / 2 if finite.size else 0.0
  for i in range(m.shape[0]):
    for j in range(m.shape[1]):
      if np.isfinite(m[i, j]):
        ax.text(j, i, fmt.format(m[i, j]), ha="center", va="center", fontsize=8,
                color="black" if m[i, j] > mid else "white")
  return im


def gate_histograms(gate: np.ndarray, path: str) -> None:
  """Distribution over users of each head's gate weight.

  Args:
    gate: ``[U, H]`` gate weights.
    path: PNG to write.
  """
  plt = _plt()
  h = gate.shape[1]
  fig, axes = plt.subplots(1, h, figsize=(2.6 * h, 2.4), sharey=True, squeeze=False)
  for i, ax in enumerate(axes[0]):
    ax.hist(gate[:, i], bins=np.linspace(0, 1, 26), color=f"C{i}")
    ax.set_title(f"head {i} (mean {gate[:, i].mean():.2f})", fontsize=9)
    ax.set_xlabel("gate weight")
  axes[0, 0].set_ylabel("users")
  fig.tight_layout()
  fig.savefig(path, dpi=80)
  plt.close(fig)


def expert_usage(router: np.ndarray, path: str) -> None:
  """Mean router weight per (head, expert) over users.

  Args:
    router: ``[U, H, E]``.
    path: PNG to write.
  """
  plt = _plt()
  m = router.mean(axis=0)
  fig, ax = plt.subplots(figsize=(1.2 + 0.7 * m.shape[1], 1.0 + 0.45 * m.shape[0]))
  im = _heatmap(ax, m, [f"e{e}" for e in range(m.shape[1])], [f"head {h}" for h in range(m.shape[0])])
  ax.set_title("mean router weight", fontsize=9)
  fig.colorbar(im, ax=ax)
  fig.tight_layout()
  fig.savefig(path, dpi=80)
  plt.close(fig)


def head_vs_fused(head_hr: list[float], fused_hr: float, path: str, label: str = "HR@10") -> None:
  """Bar chart: each head alone vs the gated fusion.

  Args:
    head_hr: per head metric.
    fused_hr: fused metric.
    path: PNG to write.
    label: metric name for the axis.
  """
  plt = _plt()
  names = [f"head {h}" for h in range(len(head_hr))] + ["fused"]
  vals = list(head_hr) + [fused_hr]
  fig, ax = plt.subplots(figsize=(1.5 + 0.8 * len(vals), 2.6))
  bars = ax.bar(names, vals, color=[f"C{i}" for i in range(len(head_hr))] + ["black"])
  for b, v in zip(bars, vals):
    ax.text(b.get_x() + b.get_width() / 2, v, f"{v:.3f}", ha="center", va="bottom", fontsize=8)
  ax.set_ylabel(label)
  ax.set_ylim(0, max(vals) * 1.2 + 1e-9)
  fig.tight_layout()
  fig.savefig(path, dpi=80)
  plt.close(fig)


def agreement_heatmap(summary: dict[str, Any], path: str) -> None:
  """Facet-neighbour agreement of the pre-trained heads (head x facet).

  Args:
    summary: ``pretrain_summary.json`` contents.
    path: PNG to write.
  """
  plt = _plt()
  a = summary["agreement"]
  m = np.asarray([[np.nan if v is None else v for v in row] for row in a["matrix"]], np.float64)
  fig, ax = plt.subplots(figsize=(1.8 + 0.9 * m.shape[1], 1.0 + 0.45 * m.shape[0]))
  im = _heatmap(ax, m, a["columns"], a["rows"])
  ax.set_title(f"pre-training facet-neighbour agreement (k={a['k']})", fontsize=9)
  fig.colorbar(im, ax=ax)
  fig.tight_layout()
  fig.savefig(path, dpi=80)
  plt.close(fig)


def facet_confusion(recovery: dict[str, Any], path: str) -> None:
  """Users by top-gate head (rows) and true dominant facet (columns).

  Args:
    recovery: ``export.facet_recovery`` output plus ``facet_names``.
    path: PNG to write.
  """
  plt = _plt()
  c = np.asarray(recovery["confusion"], np.float64)
  fig, ax = plt.subplots(figsize=(1.8 + 0.9 * c.shape[1], 1.2 + 0.45 * c.shape[0]))
  im = _heatmap(ax, c, recovery["facet_names"], [f"head {h}" for h in range(c.shape[0])],
                fmt="{:.0f}", cmap="Blues")
  ax.set_xlabel("true dominant facet")
  ax.set_title(f"top-gate head vs facet: {recovery['accuracy']:.2f} (chance {recovery['chance']:.2f})",
               fontsize=9)
  fig.colorbar(im, ax=ax)
  fig.tight_layout()
  fig.savefig(path, dpi=80)
  plt.close(fig)


def plot_export(manifest: dict[str, Any], arrays: dict[str, np.ndarray], out_dir: str,
                workdir: str) -> list[str]:
  """Writes every plot that applies to this export.

  Returns:
    File names (relative to ``out_dir``) of the PNGs written.
  """
  written = []

  def path(name):
    written.append(name)
    return os.path.join(out_dir, name)

  if "gate" in arrays:
    gate_histograms(arrays["gate"], path("gate_histograms.png"))
  expert_usage(arrays["router"], path("expert_usage.png"))
  if manifest["head_metrics"]:
    split = manifest["split"]
    head_vs_fused([m["HR@10"] for m in manifest["head_metrics"].values()],
                  manifest["metrics"][f"{split}/HR@10"], path("head_vs_fused_hr10.png"))
  summary_path = os.path.join(workdir, "pretrain", "pretrain_summary.json")
  if os.path.exists(summary_path):
    with open(summary_path) as f:
      agreement_heatmap(json.load(f), path("pretrain_agreement.png"))
  if manifest.get("facet_recovery"):
    facet_confusion(manifest["facet_recovery"], path("facet_confusion.png"))
  return written
