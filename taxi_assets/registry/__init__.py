"""Plain MLflow logic, no Dagster: registry names, the champion alias and promotion rule,
experiment runs of a model materialization, the pyfunc model that ``mlflow models serve``
loads, and loading registered models for serving."""
