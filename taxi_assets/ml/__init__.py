"""The ML core: plain Python, no Dagster (importing any module here leaves ``dagster`` out of
``sys.modules``), no environment reads: every value arrives as an argument from the wiring,
which takes it from ``taxi_assets.settings``.
"""
