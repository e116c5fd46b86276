"""taxi-assets: the NYC taxi trip-duration ML pipeline as a Dagster code location.

Deliberately empty of imports: ``import taxi_assets.ml.cleaning`` (or loading a registered
model with ``mlflow.pyfunc.load_model``) must not load Dagster. The code location is
``taxi_assets.definitions`` (``dagster dev -m taxi_assets.definitions``, ``dg dev``).
"""
