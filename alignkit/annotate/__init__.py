"""The human-feedback web app: people rank model responses; labels are stored in a database and
exported in the formats alignkit's data loaders read.

Modules, one job each: ``db`` (tables and engine), ``migrations`` (Alembic), ``security`` (passwords,
signed sessions, CSRF), ``importing`` (JSONL in), ``labels`` (assignment and label submission),
``export`` (aggregation and JSONL out), ``agreement`` (Krippendorff's alpha, raw agreement),
``quality`` (per-project and per-annotator figures), ``app``, ``dependencies`` and ``routes_*`` (the
FastAPI server: the app includes the routers; both use what ``dependencies`` holds),
``simulator`` (a reward model and a DPO step reacting to one ranking), ``cli`` (``alignkit annotate``).
The web dependencies come with the ``app`` extra: ``pip install -e '.[app]'``.
"""
