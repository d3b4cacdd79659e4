"""Draws docs/architecture.png: the FAME model and the FAME+ pre-training stage.

  python scripts/draw_architecture.py [--out docs/architecture.png]

Boxes and arrows only (matplotlib), so the figure is regenerated from this
file. Left: FAME (docs/protocol.md §1-3): embeddings, the L-1 SASRec blocks,
the FAME block per head h (E query experts and a router, head-wise residual,
LayerNorm and FFN' giving F^h), the per-head item scores, the gate and the
full softmax. Right: FAME+ stage 1 (docs/protocol.md §5): item text, the
frozen MiniLM encoder, one projection head P_h per facet trained with SupCon,
and the hand-off to the item table.
"""

from __future__ import annotations

import argparse

import matplotlib

matplotlib.use("Agg")  # Files only; no display needed.
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch  # noqa: E402

# Colours per kind of box: inputs/outputs, trunk, FAME block, scoring, FAME+.
_IO = "#f2f2f2"
_TRUNK = "#dbe8f6"
_FAME = "#fde9cf"
_SCORE = "#e3f1dc"
_TEXT = "#ece1f3"


def box(ax, x, y, w, h, text, color, fontsize=9.5, weight="normal"):
  """A rounded box centred at (x, y) with width w and height h; returns it."""
  patch = FancyBboxPatch((x - w / 2, y - h / 2), w, h, boxstyle="round,pad=0.002,rounding_size=0.01",
                         linewidth=1.1, edgecolor="#444444", facecolor=color)
  ax.add_patch(patch)
  ax.text(x, y, text, ha="center", va="center", fontsize=fontsize, weight=weight, wrap=True)
  return patch


def arrow(ax, start, end, style="-|>", color="#333333", ls="-", lw=1.2, rad=0.0):
  """An arrow from point ``start`` to point ``end`` (data coordinates)."""
  ax.add_patch(FancyArrowPatch(start, end, arrowstyle=style, mutation_scale=12, color=color,
                               linestyle=ls, linewidth=lw,
                               connectionstyle=f"arc3,rad={rad}", shrinkA=2, shrinkB=2))


def frame(ax, x0, y0, x1, y1, label, color, ls="--"):
  """A dashed rectangle (x0, y0)-(x1, y1) with a label at its top left."""
  ax.add_patch(FancyBboxPatch((x0, y0), x1 - x0, y1 - y0, boxstyle="round,pad=0.005,rounding_size=0.015",
                              linewidth=1.3, edgecolor=color, facecolor="none", linestyle=ls))
  ax.text(x0 + 0.008, y1 - 0.006, label, ha="left", va="top", fontsize=10.5, weight="bold", color=color)


def draw(out: str) -> None:
  fig = plt.figure(figsize=(15, 11))
  ax = fig.add_axes([0, 0, 1, 1])
  ax.set_xlim(0, 1)
  ax.set_ylim(0, 1)
  ax.axis("off")

  ax.text(0.33, 0.985, "FAME: facet-aware multi-head mixture-of-experts recommender",
          ha="center", va="top", fontsize=13, weight="bold")
  ax.text(0.835, 0.985, "FAME+: text pre-training (stage 1)", ha="center", va="top", fontsize=13,
          weight="bold")

  # ------------------------------------------------------------ left: FAME
  cx = 0.33  # Centre of the main column.
  box(ax, cx, 0.935, 0.40, 0.036, "item sequence  $i_1, \\dots, i_t$  (0 = pad)", _IO)
  box(ax, cx, 0.875, 0.50, 0.046,
      "item embedding $e_{i_t}$ + position embedding $p_t$\n→ LayerNorm → dropout", _TRUNK)
  box(ax, cx, 0.805, 0.50, 0.052,
      "$L-1$ SASRec blocks (post-LN): causal multi-head attention + $W_O$,\n"
      "residual + LayerNorm, FFN $d \\to 256 \\to d$, residual + LayerNorm", _TRUNK)
  arrow(ax, (cx, 0.917), (cx, 0.898))
  arrow(ax, (cx, 0.852), (cx, 0.831))

  # FAME block: one column per head, shown for heads 1 and H.
  frame(ax, 0.035, 0.395, 0.625, 0.768, "FAME block (last layer), all heads at once", "#b36b00")
  heads_x = (0.19, 0.47)
  for hx, name in zip(heads_x, ("1", "H")):
    h = name
    box(ax, hx, 0.715, 0.25, 0.05,
        f"head {h}: shared $K^{h}, V^{h}$\n$E$ expert queries $Q^{{{h},1}} \\dots Q^{{{h},E}}$", _FAME)
    box(ax, hx, 0.645, 0.25, 0.05,
        f"$E$ attention outputs\n$f^{{{h},n}} = \\mathrm{{softmax}}(Q^{{{h},n}} K^{{{h}\\top}}/\\sqrt{{d'}})\\,V^{{{h}}}$",
        _FAME, fontsize=9)
    box(ax, hx, 0.572, 0.25, 0.05,
        f"router $\\beta^{h} = \\mathrm{{softmax}}([f^{{{h},1}}\\|\\dots\\|f^{{{h},E}}]\\,W_{{exp}}^{h})$\n"
        f"MoE mix $f^{h} = \\sum_n \\beta^{h}_n f^{{{h},n}}$", _FAME, fontsize=9)
    box(ax, hx, 0.497, 0.25, 0.052,
        f"head-wise residual $X^{h} + f^{h}$, LayerNorm($d'$)\nFFN$'$ $d' \\to d' \\to d'$, LayerNorm (no $W_O$)",
        _FAME, fontsize=9)
    box(ax, hx, 0.428, 0.12, 0.034, f"$F^{h}$  ($d'$)", _FAME, weight="bold")
    arrow(ax, (hx, 0.690), (hx, 0.670))
    arrow(ax, (hx, 0.620), (hx, 0.597))
    arrow(ax, (hx, 0.547), (hx, 0.523))
    arrow(ax, (hx, 0.471), (hx, 0.445))
    arrow(ax, (cx, 0.779), (hx, 0.740))
  ax.text(cx, 0.57, "…", ha="center", va="center", fontsize=22)
  ax.text(cx, 0.43, "FFN$'$ and LayerNorms\nshared by the heads", ha="center", va="center",
          fontsize=8.5, style="italic", color="#7a4a00")

  # Scoring: one score per head, the gate between them, then the gated sum.
  score_x = (0.125, 0.535)
  for hx, sx, h in zip(heads_x, score_x, ("1", "H")):
    box(ax, sx, 0.335, 0.19, 0.06,
        f"item scores of head ${h}$\n$s^{h}(v) = \\langle F^{h}, x_v^{h} \\rangle$\n"
        f"$x_v^{h} = e_v W_f^{h}$  or chunk ${h}$ of $e_v$", _SCORE, fontsize=8.8)
    arrow(ax, (hx, 0.411), (sx, 0.366))
    arrow(ax, (sx, 0.304), (cx + (-0.16 if sx < cx else 0.16), 0.250))
  box(ax, cx, 0.335, 0.19, 0.06,
      "gate (per position)\n$g = \\mathrm{softmax}(W_g [F^1 \\| \\dots \\| F^H] + b_g)$\nor uniform $g_h = 1/H$",
      _SCORE, fontsize=8.8)
  for hx in heads_x:
    arrow(ax, (hx + (0.06 if hx < cx else -0.06), 0.411), (cx + (-0.05 if hx < cx else 0.05), 0.366),
          color="#777777", ls=":")
  arrow(ax, (cx, 0.304), (cx, 0.250))
  box(ax, cx, 0.225, 0.56, 0.05,
      "$s(v) = \\sum_h g_h\\, s^h(v) = \\langle u, e_v \\rangle$,  $u = \\sum_h g_h W_f^h F^h$\n"
      "(one matmul $u\\,E^\\top$ over the item table)", _SCORE)
  box(ax, cx, 0.125, 0.50, 0.05,
      "full softmax over all $N$ items (pad = $-\\infty$)\ntraining: cross-entropy;  evaluation: full ranking",
      _IO)
  arrow(ax, (cx, 0.200), (cx, 0.150))

  # Item table, shared by the input and the scores.
  ax.text(0.645, 0.875, "item table $E$\n$[N+1, d]$", ha="left", va="center", fontsize=9.5,
          bbox=dict(boxstyle="round,pad=0.3", fc=_TRUNK, ec="#444444"))
  arrow(ax, (0.643, 0.875), (0.582, 0.875))
  arrow(ax, (0.665, 0.857), (0.60, 0.366), rad=-0.12, color="#2f6f2f", ls="--")
  ax.text(0.632, 0.30, "$e_v$ of\nevery item", fontsize=8.5, color="#2f6f2f", ha="left")

  ax.text(cx, 0.05,
          "SASRec = the same code with $E = 1$ and no facet heads (the last block is a standard block).",
          ha="center", va="center", fontsize=9.5, style="italic")

  # ------------------------------------------------------------ right: FAME+
  rx = 0.835
  frame(ax, 0.705, 0.27, 0.975, 0.955, "stage 1: item text only (no interactions)", "#6a3d8a")
  box(ax, rx, 0.895, 0.24, 0.05, "item metadata\n(title, brand, categories; genres, year)", _IO)
  box(ax, rx, 0.815, 0.24, 0.05, "item text from a template\n\"{title}|Brand: {brand}|...\"", _TEXT)
  box(ax, rx, 0.730, 0.24, 0.06,
      "frozen MiniLM-L6 encoder (Flax)\nmean pooling, L2 norm → $t_v \\in \\mathbb{R}^{384}$\n(cached once per dataset)",
      _TEXT)
  box(ax, rx, 0.635, 0.24, 0.06,
      "per-facet projection heads\n$P_h$: MLP $384 \\to 256 \\to d'$,\n$h = 1 \\dots H$", _TEXT)
  box(ax, rx, 0.535, 0.24, 0.065,
      "SupCon on facet labels\n(facet $h$: e.g. category, brand)\npositives share a value; $\\tau = 0.1$\nalternating: step $s$ trains head $s$ mod $H$",
      _TEXT, fontsize=9)
  box(ax, rx, 0.425, 0.24, 0.06,
      "hand-off:\n$e_v = [\\,c_1 P_1(t_v) \\| \\dots \\| c_H P_H(t_v)\\,]$\n(rescaled to the init scale)",
      _TEXT)
  box(ax, rx, 0.325, 0.24, 0.05, "stage 2: FAME training from\nthat item table (nothing frozen)", _IO)
  for y0, y1 in ((0.870, 0.840), (0.790, 0.760), (0.700, 0.665), (0.605, 0.568), (0.5025, 0.455),
                 (0.395, 0.350)):
    arrow(ax, (rx, y0), (rx, y1))
  arrow(ax, (0.714, 0.425), (0.69, 0.86), color="#6a3d8a", ls="--", lw=1.6, rad=0.25)
  ax.text(0.712, 0.245, "the hand-off initialises the item table $E$;\nhead $h$ starts on facet $h$",
          fontsize=9, color="#6a3d8a", ha="left", va="top")

  fig.savefig(out, dpi=110)
  plt.close(fig)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--out", default="docs/architecture.png", help="PNG to write.")
  draw(parser.parse_args().out)


if __name__ == "__main__":
  main()
