"""Executors decide where a step runs: ``ray`` (the default) or ``local`` threads."""
