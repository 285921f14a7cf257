"""The demo's guard against stale README figures: its table is read back and compared with a run's."""
from demo import readme_mismatches

README = """# x
**Demo results** (`make demo`, ...):

| attribute | test CCC |
|---|---|
| Act | 0.7677 |
| Dom | 0.8097 |

Other text | with | pipes |
"""


def test_readme_figures_are_compared_with_the_run(tmp_path):
    p = tmp_path / "README.md"
    p.write_text(README)
    assert readme_mismatches("Demo results", {"Act": "0.7677", "Dom": "0.8097"}, p) == []
    assert readme_mismatches("Demo results", {"Act": "0.7677", "Dom": "0.7160", "Val": "0.1"}, p) == \
        ["Dom: 0.8097 -> 0.7160", "Val: missing -> 0.1"]
    assert readme_mismatches("Other results", {"Act": "1"}, p) == ["no **Other results** table in README.md"]


def test_the_shipped_readme_has_the_demo_table():
    assert not any(m.startswith("no ") or "missing" in m
                   for m in readme_mismatches("Demo results", {"Act": "x", "Dom": "x", "Val": "x"}))
