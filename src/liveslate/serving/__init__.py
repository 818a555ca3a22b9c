"""Serving the champion with BentoML and logging what it served (DESIGN.md, "Serving").

- ``service``: the ``@bentoml.service`` class (/recommend, /feedback, /metadata, readiness);
- ``recommender``: what the endpoints do, without BentoML (validation, draw, logging);
- ``requests``: the typed request and response models, and ``RequestError``;
- ``records``: the spool's JSON-lines records (written here, read by the served ingest source);
- ``spool_writer`` / ``impression_index``: durable appends, and which impressions exist;
- ``middleware``: the request-size limit (413);
- ``arguments``: the Bento's build arguments (the serving settings);
- ``bento_model`` / ``package``: the champion → a BentoML model → a Bento (`liveslate package`).

Nothing is imported here, so ``import liveslate.serving.records`` stays free of BentoML.
"""
