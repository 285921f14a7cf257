"""The comparison report (benchmark.py): config, steps, their runner, statistics and rendering."""
