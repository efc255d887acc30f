"""The pieces of ``station export``: the pinned BDF 1.2.0 vocabulary (``vocabulary``, checked against the vendored
ontology in ``ontology/``), the step types of a program (``step_types``), the record, EIS and cycle-summary tables
built from stored records, the BDF/BattINFO-shaped metadata sidecar, and the one pyarrow writer for CSV and
Parquet. :func:`station.export.export_run` puts them together."""
