"""Trackers that mirror a trial's run directory while it trains: TensorBoard event files, MLflow runs, and TRL's
own ``report_to`` integrations (``tracking:`` in the spec, docs/tracking.md). The run directory stays the record."""
