"""Rows compared over seeds: mean ± std, paired 95% t intervals, and what to use.

The question a user brings is "does the method pay off on my data, and with
which variant?". One seed cannot answer it: the same fine-tuning swings by
several points between seeds. So every row (the baseline(s), Model-B, each
variant's Model-D, self-training) is run with the same seeds, and a row is
compared with a reference seed by seed (both sides from the same seed's run,
which shares the split, Model-A and the pseudo-labels): the mean of the
paired differences with its 95% t interval, mean ± t(0.975, n−1)·sd/√n, and
the seeds on which the row is strictly higher ("wins").

The decision (`recommend`): the user's alternative to the method is
fine-tuning the initial checkpoint, so the reference that decides is the
baseline; Model-B (steps 1-2) is itself an option, cheaper than any
variant (steps 3-5 on top of it). A row is worth using only when its
interval over the baseline lies above 0; among those, the cheapest that is
not beaten beyond the noise is chosen: Model-B, unless a variant beats
Model-B beyond the noise too (then the variant with the largest mean gain
over the baseline). With one seed there is no interval, and the line says so
instead of choosing. A row or seed without a result is reported as missing,
never as a zero. Without a baseline row, Model-B is the reference. Other
baselines (`baseline_<N>layers`, another model size) are shown and
compared, but not recommended: they answer another question.

Input: {seed: {row: metric or None}} (metric: accuracy or entity F1 in
[0, 1]); output: a dict for report.json (`compare`), markdown (`to_markdown`)
and a plot (`plot`). Tables and lines are in points (x100).
"""

import math
import os
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
from scipy import stats

BASELINE = "baseline"
MODEL_B = "model_b"
CONFIDENCE = 0.95
# compare()'s verdict of a row against a reference, from the interval.
VERDICTS = ("better", "noise", "worse", "few")

Results = Mapping[str, Mapping[str, Optional[float]]]  # {seed: {row: metric}}


def t_interval(values: Sequence[float], scale: float = 1.0) -> Tuple[float, Optional[float]]:
  """(mean, half-width of its 95% t confidence interval), both times SCALE
  (100: points); the half-width is None below 2 values (no spread to
  estimate)."""
  mean = scale * float(np.mean(values))
  if len(values) < 2:
    return mean, None
  spread = scale * float(np.std(values, ddof=1)) / math.sqrt(len(values))
  return mean, float(stats.t.ppf(0.5 + CONFIDENCE / 2, len(values) - 1)) * spread


def verdict(differences: Sequence[float]) -> str:
  """One of VERDICTS: the interval of the mean difference above 0, around
  it, below it, or too few values for one."""
  if len(differences) < 2:
    return "few"
  mean, half = t_interval(differences)
  return "better" if mean - half > 0 else "worse" if mean + half < 0 else "noise"


def mean_std(values: Sequence[float], scale: float = 1.0) -> Tuple[float, Optional[float]]:
  """(mean, sample standard deviation), both times SCALE; the deviation is
  None below 2 values."""
  mean = scale * float(np.mean(values))
  return mean, scale * float(np.std(values, ddof=1)) if len(values) > 1 else None


def mean_std_text(values: Sequence[Optional[float]], signed: bool = False) -> str:
  """'mean ± sample standard deviation' in points with 2 decimals; the mean
  alone for one value, 'n/a' for none (missing values are left out)."""
  values = [v for v in values if v is not None]
  if not values:
    return "n/a"
  mean, std = mean_std(values, scale=100)
  text = f"{mean:{'+' if signed else ''}.2f}"
  return text if std is None else f"{text} ± {std:.2f}"


def difference_cells(differences: Sequence[float]) -> List[str]:
  """Mean, 95% interval and wins of paired differences, in points."""
  if not differences:
    return ["n/a", "n/a", "0 of 0"]
  mean, half = t_interval(differences, scale=100)
  interval = "n/a" if half is None else f"[{mean - half:+.2f}, {mean + half:+.2f}]"
  wins = sum(1 for d in differences if d > 0)
  return [f"{mean:+.2f}", interval, f"{wins} of {len(differences)}"]


def row_values(results: Results, row: str) -> Dict[str, float]:
  """{seed: the row's metric} for the seeds that have it."""
  found = {}
  for seed, rows in results.items():
    value = (rows or {}).get(row)
    if value is not None:
      found[seed] = value
  return found


def paired(results: Results, row: str, reference: str) -> Dict[str, float]:
  """{seed: row − reference} for the seeds that have both."""
  mine, theirs = row_values(results, row), row_values(results, reference)
  return {seed: mine[seed] - theirs[seed] for seed in mine if seed in theirs}


def _difference(differences: Mapping[str, float]) -> Dict:
  """A paired comparison for report.json, in the metric's units."""
  values = list(differences.values())
  entry = {"n": len(values), "per_seed": dict(differences), "verdict": verdict(values)}
  if values:
    mean, half = t_interval(values)
    entry.update(
      mean=mean,
      low=None if half is None else mean - half,
      high=None if half is None else mean + half,
      wins=sum(1 for v in values if v > 0),
    )
  return entry


def compare(
  results: Results,
  rows: Sequence[str],
  baseline: str = BASELINE,
  model_b: str = MODEL_B,
  names: Optional[Mapping[str, str]] = None,
) -> Dict:
  """The comparison of ROWS (in display order; rows other than the
  baseline(s) and Model-B are the variants) over the seeds of RESULTS.
  `names` (row -> words) are used in the table and the recommendation
  line; default the row's key."""
  results = {str(seed): rows_of_seed for seed, rows_of_seed in results.items()}
  seeds = list(results)
  names = {row: (names or {}).get(row, row) for row in rows}
  summary = {"seeds": seeds, "names": names, "rows": {}, "missing_rows": [], "differences": {}}
  for row in rows:
    values = row_values(results, row)
    if not values:
      summary["missing_rows"].append(row)
      continue
    mean, std = mean_std(list(values.values()))
    summary["rows"][row] = {
      "n": len(values),
      "mean": mean,
      "std": std,
      "half_interval": t_interval(list(values.values()))[1],
      "per_seed": values,
      "missing_seeds": [seed for seed in seeds if seed not in values],
    }
  references = [r for r in (model_b, baseline) if r in summary["rows"]]
  for reference in references:
    summary["differences"][reference] = {
      row: _difference(paired(results, row, reference))
      for row in summary["rows"]
      if row != reference and not (reference == model_b and row == baseline)
    }
  summary["recommendation"] = recommend(summary, baseline, model_b)
  return summary


def _gain(entry: Dict, reference: str) -> str:
  """'+4.10 [+0.60, +7.50] over REFERENCE, 3 of 3 seeds' (points); no
  interval below 2 seeds."""
  interval = (
    "" if entry["low"] is None else f" [{100 * entry['low']:+.2f}, {100 * entry['high']:+.2f}]"
  )
  return (
    f"{100 * entry['mean']:+.2f}{interval} over {reference}, {entry['wins']} of {entry['n']} seeds"
  )


def _decided(row: Optional[str], case: str, line: str) -> Dict:
  return {"row": row, "case": case, "line": line}


def recommend(summary: Dict, baseline: str, model_b: str) -> Dict:
  """{'row': what to use (None: the reference, or undecided), 'case', 'line'}:
  the decision of the module doc in one plain line. Cases: 'win' (a row
  beats the reference beyond the noise), 'noise' (the best gain is inside
  the noise), 'reference_best' (no row above the reference on average),
  'one_seed' (no interval), 'missing' (nothing to compare)."""
  name = summary["names"].__getitem__
  reference = baseline if baseline in summary["differences"] else model_b
  against = summary["differences"].get(reference)
  if against is None:
    return _decided(None, "missing", "no baseline and no Model-B result: nothing to compare")
  # Other baselines (baseline_<N>layers: another model size) are context, not options.
  options = {
    row: entry for row, entry in against.items() if entry["n"] and not row.startswith(baseline)
  }
  if not options:
    return _decided(None, "missing", f"no row shares a seed with {name(reference)}")
  best = max(options, key=lambda row: options[row]["mean"])
  if all(entry["verdict"] == "few" for entry in options.values()):
    return _decided(
      None,
      "one_seed",
      "one seed only, no interval: a difference cannot be told from seed noise (highest: "
      f"{name(best)}, {_gain(options[best], name(reference))}); run more seeds",
    )
  winners = [row for row, entry in options.items() if entry["verdict"] == "better"]
  if not winners:
    worse = [name(row) for row, entry in options.items() if entry["verdict"] == "worse"]
    if options[best]["mean"] > 0:
      case, words = "noise", f"highest: {name(best)}"
    else:
      case, words = "reference_best", f"{name(reference)} is highest; closest: {name(best)}"
    words += f", {_gain(options[best], name(reference))}"
    words += f"; worse beyond the noise: {', '.join(worse)}" if worse else ""
    action = "fine-tune" if reference == baseline else "use"
    return _decided(
      None,
      case,
      f"no row beats {name(reference)} beyond the noise ({words}): {action} {name(reference)}",
    )
  choice = max(winners, key=lambda row: options[row]["mean"])
  over_b = summary["differences"].get(model_b, {}).get(choice)
  shared = bool(over_b and over_b["n"]) and reference != model_b
  detail = f"; {_gain(over_b, name(model_b))}" if shared and choice != model_b else ""
  if choice != model_b and model_b in winners and not (shared and over_b["verdict"] == "better"):
    # Steps 3-5 cost more than Model-B and are not shown to add to it.
    detail = (
      f"; {name(choice)} is {_gain(over_b, name(model_b))}, not beyond the noise"
      if shared
      else f"; {name(choice)} has no seed in common with {name(model_b)}"
    )
    choice = model_b
  return _decided(
    choice, "win", f"{name(choice)}: {_gain(options[choice], name(reference))}{detail} — use it"
  )


def to_markdown(summary: Dict, metric_label: str) -> str:
  """The table (each row's mean ± std over seeds, then its paired
  differences) and the recommendation line."""
  names = summary["names"]
  references = list(summary["differences"])
  lines = [
    f"| row | test {metric_label} (%), mean ± std | seeds | "
    + " | ".join(f"− {names[r]} | 95% CI | wins" for r in references)
    + " |",
    "|---|---|---|" + "---|---|---|" * len(references),
  ]
  for row, entry in summary["rows"].items():
    cells = [mean_std_text(list(entry["per_seed"].values())), str(entry["n"])]
    for reference in references:
      differences = summary["differences"][reference].get(row)
      cells += difference_cells(list(differences["per_seed"].values())) if differences else [""] * 3
    missing = (
      f" (missing seeds: {', '.join(entry['missing_seeds'])})" if entry["missing_seeds"] else ""
    )
    lines.append(f"| {names[row]}{missing} | " + " | ".join(cells) + " |")
  lines += [""]
  if summary["missing_rows"]:
    missing = ", ".join(names[r] for r in summary["missing_rows"])
    lines += [f"Missing (no result for any seed): {missing}.", ""]
  lines += [
    f"Seeds: {', '.join(summary['seeds'])}. Differences are paired by seed, in points, with the "
    "95% t interval of their mean; wins: the seeds on which the row is strictly higher.",
    "",
    f"**Recommendation:** {summary['recommendation']['line']}.",
    "",
  ]
  return "\n".join(lines)


def draw_bars(axis, bars: Sequence[Tuple[str, float, Optional[float]]], colors: Sequence[str]):
  """Bars of (tick, mean, half interval) in points, whiskers the 95% t
  interval of each mean; the y range fits the whiskers."""
  halves = [half or 0.0 for _, _, half in bars]
  axis.bar(
    range(len(bars)),
    [mean for _, mean, _ in bars],
    yerr=halves,
    capsize=4,
    color=list(colors),
  )
  axis.set_xticks(range(len(bars)))
  axis.set_xticklabels([tick for tick, _, _ in bars], fontsize=8)
  low = min(mean - half for (_, mean, _), half in zip(bars, halves))
  high = max(mean + half for (_, mean, _), half in zip(bars, halves))
  axis.set_ylim(max(0.0, low - 5), min(100.0, high + 3))


def color(row: str, baseline: str = BASELINE, model_b: str = MODEL_B) -> str:
  """The plots' colour of a row: baselines grey, Model-B blue, the rest orange."""
  if row == model_b:
    return "#4c72b0"
  return "#999999" if row.startswith(baseline) else "#dd8452"


def plot(summary: Dict, path: str, title: str) -> None:
  """PATH (PNG, written whole): each row's mean over the seeds, in points,
  whiskers its 95% t interval."""
  from matplotlib.figure import Figure  # pylint: disable=g-import-not-at-top

  rows = list(summary["rows"])
  figure = Figure(figsize=(max(4.0, 1.3 * len(rows)), 4.5))
  axis = figure.subplots()
  bars = []
  for row in rows:
    entry = summary["rows"][row]
    bars.append(
      (
        row.replace("/", "\n"),
        100 * entry["mean"],
        None if entry["half_interval"] is None else 100 * entry["half_interval"],
      )
    )
  if bars:
    draw_bars(axis, bars, [color(row) for row in rows])
  axis.set_title(f"{title} ({len(summary['seeds'])} seeds)")
  figure.tight_layout()
  figure.savefig(path + ".tmp", dpi=100, format="png", metadata={"Software": None})
  os.replace(path + ".tmp", path)
