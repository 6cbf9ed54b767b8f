"""The life cycle's logic, as plain functions on frames, files and registry clients; no `kfp`,
no server runtime. Each package is one concern:

- `dataset`: the data-set config, expressions, storage, ingest, validation, processing
- `modelling`: features, estimators, cross-validation, evaluation, model files
- `registry`: registration in MLflow, the promotion policy and lock, loading a registered model
- `contract`: what a model accepts and answers: its signature's columns, the wire protocols
- `scoring`: batch scoring with a registered model
- `deploy`: the KServe InferenceService, its rollout and the smoke request
- `notify`: how a run ended, told to a webhook
"""
