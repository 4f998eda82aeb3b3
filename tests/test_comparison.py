"""comparison: intervals against a direct SciPy computation, the
recommendation on a table of cases, missing rows and seeds, markdown, plot."""

import json

import numpy as np
import pytest
from scipy import stats

from bert_pl import comparison

BASE = (0.50, 0.52, 0.54)  # the baseline's metric on seeds 1, 2, 3
NAMES = {"baseline": "the baseline", "model_b": "Model-B"}
T_975_2 = 4.302652729911275  # t distribution, 0.975 quantile, 2 degrees of freedom


def _results(**offsets):
  """{seed: {row: BASE[seed] + offset}}; an offset None: the row is missing there."""
  results = {}
  for i, seed in enumerate(("1", "2", "3")):
    results[seed] = {"baseline": BASE[i]}
    for row, offset in offsets.items():
      if offset[i] is not None:
        results[seed][row] = round(BASE[i] + offset[i], 6)
  return results


def _compare(results, rows=("baseline", "model_b", "hard_mlm", "kl_nomask")):
  return comparison.compare(results, rows, names=NAMES)


def test_intervals_equal_a_direct_scipy_computation():
  rng = np.random.default_rng(0)
  for n in (2, 3, 5, 8):
    values = list(rng.normal(0.01, 0.02, n))
    low, high = stats.t.interval(0.95, n - 1, loc=np.mean(values), scale=stats.sem(values))
    mean, half = comparison.t_interval(values)
    assert mean == pytest.approx(np.mean(values)) and half == pytest.approx((high - low) / 2)
    scaled = comparison.t_interval(values, scale=100)
    assert scaled == pytest.approx((100 * mean, 100 * half))
  mean, half = comparison.t_interval([0.01, 0.02, 0.03])
  assert (mean, half) == pytest.approx((0.02, T_975_2 * 0.01 / np.sqrt(3)))
  assert comparison.t_interval([0.05]) == (pytest.approx(0.05), None)
  assert comparison.mean_std_text([0.5, 0.52, 0.54]) == "52.00 ± 2.00"
  assert comparison.mean_std_text([0.011], signed=True) == "+1.10"
  assert comparison.mean_std_text([None]) == "n/a"
  assert comparison.difference_cells([0.01, 0.02, 0.03]) == ["+2.00", "[-0.48, +4.48]", "3 of 3"]
  assert comparison.difference_cells([0.01]) == ["+1.00", "n/a", "1 of 1"]
  assert comparison.difference_cells([]) == ["n/a", "n/a", "0 of 0"]


def test_compare_numbers_match_the_paired_differences():
  results = _results(model_b=(0.01, 0.0, 0.02), kl_nomask=(0.04, 0.05, 0.045))
  summary = _compare(results)
  differences = [0.04 - 0.01, 0.05 - 0.0, 0.045 - 0.02]  # kl_nomask − Model-B
  low, high = stats.t.interval(0.95, 2, loc=np.mean(differences), scale=stats.sem(differences))
  entry = summary["differences"]["model_b"]["kl_nomask"]
  assert (entry["mean"], entry["low"], entry["high"]) == pytest.approx(
    (np.mean(differences), low, high)
  )
  assert entry["wins"] == 3 and entry["n"] == 3 and entry["verdict"] == "better"
  assert entry["per_seed"] == pytest.approx(dict(zip("123", differences)))
  row = summary["rows"]["model_b"]
  assert (row["mean"], row["std"]) == pytest.approx((0.53, np.sqrt(7e-4)))  # 0.51, 0.52, 0.56
  assert "baseline" not in summary["differences"]["model_b"]  # Model-B's own context
  assert set(summary["differences"]["baseline"]) == {"model_b", "kl_nomask"}
  assert summary["missing_rows"] == ["hard_mlm"]
  assert json.loads(json.dumps(summary)) == summary  # report.json keeps it as is
  # Another model size beats everything, but is context, not an option.
  results = _results(
    model_b=(0.01, 0.0, 0.02), kl_nomask=(0.04, 0.05, 0.045), baseline_6layers=(0.1, 0.1, 0.11)
  )
  summary = _compare(results, ("baseline", "baseline_6layers", "model_b", "kl_nomask"))
  assert summary["differences"]["baseline"]["baseline_6layers"]["verdict"] == "better"
  assert summary["recommendation"]["row"] == "kl_nomask"


@pytest.mark.parametrize(
  "offsets, case, row, line",
  [
    (  # clear win: beyond the noise over the baseline and over Model-B
      dict(model_b=(0.01, 0.0, 0.02), kl_nomask=(0.04, 0.05, 0.045)),
      "win",
      "kl_nomask",
      "kl_nomask: +4.50 [+3.26, +5.74] over the baseline, 3 of 3 seeds; "
      "+3.50 [+0.21, +6.79] over Model-B, 3 of 3 seeds — use it",
    ),
    (  # the variant's gain over Model-B is noise: Model-B, the cheaper, is used
      dict(model_b=(0.04, 0.03, 0.035), kl_nomask=(0.06, 0.03, 0.045)),
      "win",
      "model_b",
      "Model-B: +3.50 [+2.26, +4.74] over the baseline, 3 of 3 seeds; kl_nomask is "
      "+1.00 [-1.48, +3.48] over Model-B, 2 of 3 seeds, not beyond the noise — use it",
    ),
    (  # a variant beats the baseline, Model-B does not: the variant
      dict(model_b=(0.03, -0.02, 0.0), kl_nomask=(0.04, 0.05, 0.045)),
      "win",
      "kl_nomask",
      "kl_nomask: +4.50 [+3.26, +5.74] over the baseline, 3 of 3 seeds; "
      "+4.17 [-3.32, +11.65] over Model-B, 3 of 3 seeds — use it",
    ),
    (  # win inside the noise
      dict(model_b=(0.0, -0.01, 0.005), kl_nomask=(0.05, -0.01, 0.02)),
      "noise",
      None,
      "no row beats the baseline beyond the noise (highest: kl_nomask, +2.00 [-5.45, +9.45] "
      "over the baseline, 2 of 3 seeds): fine-tune the baseline",
    ),
    (  # loss: a variant worse beyond the noise, the best inside it
      dict(model_b=(0.01, -0.01, 0.02), hard_mlm=(-0.03, -0.04, -0.035)),
      "noise",
      None,
      "no row beats the baseline beyond the noise (highest: Model-B, +0.67 [-3.13, +4.46] "
      "over the baseline, 2 of 3 seeds; worse beyond the noise: hard_mlm): "
      "fine-tune the baseline",
    ),
    (  # baseline best: every row below it on average
      dict(model_b=(-0.01, 0.0, -0.02), hard_mlm=(-0.03, -0.04, -0.035)),
      "reference_best",
      None,
      "no row beats the baseline beyond the noise (the baseline is highest; closest: "
      "Model-B, -1.00 [-3.48, +1.48] over the baseline, 0 of 3 seeds; worse beyond the "
      "noise: hard_mlm): fine-tune the baseline",
    ),
  ],
)
def test_the_recommendation_on_a_table_of_cases(offsets, case, row, line):
  recommendation = _compare(_results(**offsets))["recommendation"]
  assert recommendation == {"row": row, "case": case, "line": line}


def test_one_seed_says_there_is_no_interval():
  results = {"1": {"baseline": 0.5, "model_b": 0.52, "kl_nomask": 0.55}}
  recommendation = _compare(results)["recommendation"]
  assert recommendation == {
    "row": None,
    "case": "one_seed",
    "line": "one seed only, no interval: a difference cannot be told from seed noise "
    "(highest: kl_nomask, +5.00 over the baseline, 1 of 1 seeds); run more seeds",
  }


def test_missing_rows_and_seeds_are_reported_not_zeros(tmp_path):
  results = _results(
    model_b=(0.01, 0.0, 0.02), kl_nomask=(0.04, None, 0.045), hard_mlm=(None, None, None)
  )
  results["2"]["self_training"] = None  # a row without a result is missing, not 0
  summary = comparison.compare(
    results, ("baseline", "model_b", "kl_nomask", "hard_mlm", "self_training"), names=NAMES
  )
  assert summary["missing_rows"] == ["hard_mlm", "self_training"]
  entry = summary["rows"]["kl_nomask"]
  assert entry["n"] == 2 and entry["missing_seeds"] == ["2"]
  assert entry["mean"] == pytest.approx((0.54 + 0.585) / 2)
  assert summary["differences"]["baseline"]["kl_nomask"]["n"] == 2
  markdown = comparison.to_markdown(summary, "accuracy")
  assert (
    "| kl_nomask (missing seeds: 2) | 56.25 ± 3.18 | 2 | +2.75 | [-0.43, +5.93] | 2 of 2 |"
    in markdown
  )
  assert "Missing (no result for any seed): hard_mlm, self_training." in markdown
  assert markdown.splitlines()[0] == (
    "| row | test accuracy (%), mean ± std | seeds | − Model-B | 95% CI | wins | "
    "− the baseline | 95% CI | wins |"
  )
  assert "| Model-B | 53.00 ± 2.65 | 3 |  |  |  | +1.00 | [-1.48, +3.48] | 2 of 3 |" in markdown
  assert "| the baseline | 52.00 ± 2.00 | 3 |  |  |  |  |  |  |" in markdown
  assert f"**Recommendation:** {summary['recommendation']['line']}." in markdown
  comparison.plot(summary, str(tmp_path / "comparison.png"), "accuracy")
  assert (tmp_path / "comparison.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
  assert not list(tmp_path.glob("*.tmp"))


def test_without_a_baseline_model_b_is_the_reference():
  results = {
    seed: {"model_b": BASE[i], "kl_nomask": BASE[i] + d}
    for i, (seed, d) in enumerate(zip("123", (0.01, -0.01, 0.005)))
  }
  summary = _compare(results)
  assert summary["missing_rows"] == ["baseline", "hard_mlm"]
  assert summary["recommendation"]["line"] == (
    "no row beats Model-B beyond the noise (highest: kl_nomask, +0.17 [-2.42, +2.75] over "
    "Model-B, 2 of 3 seeds): use Model-B"
  )
  for i, seed in enumerate("123"):
    results[seed]["kl_nomask"] = BASE[i] + (0.04, 0.05, 0.045)[i]
  assert _compare(results)["recommendation"]["line"] == (
    "kl_nomask: +4.50 [+3.26, +5.74] over Model-B, 3 of 3 seeds — use it"
  )
