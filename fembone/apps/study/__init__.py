"""Parametric studies: one case file, many variants, one tidy table. Units: mm, N, MPa.

A study file (``fembone study STUDY.yaml``)::

    name: lesion-size-x-density
    base: L1_lytic.yaml                  # a case file, relative to the study file
    scenarios:                           # optional named variants (key-path overrides; null deletes a key)
      intact: {lesions: null}
      lytic: {}
    parameters:                          # key paths into the case -> values
      lesions[0].volume_fraction: [0.1, 0.2, 0.3]
      materials.trabecular.density: [0.10, 0.15, 0.20]
    design: grid                         # grid | zip | lhs | random
    samples: 20                          # lhs/random: number of points
    seed: 1                              # lhs/random: reproducible draws
    outputs: [axial_stiffness, posterior_wall_bulge, factor_of_risk]   # metrics for --report plots

Rules, in the order they apply to every case:

1. the scenario's overrides are applied to the parsed base case (``null`` deletes the key);
2. the design point's parameter values are set (``null`` deletes); a parameter whose key path
   lies under a key the scenario deleted (``lesions[0].volume_fraction`` in ``intact``) is not
   applied there: the case is the same for every value of it and is solved once;
3. a ``cement`` entry with ``volume_ml: 0`` or a ``lesions`` entry with ``volume_fraction: 0``
   is removed (and the key when its list is empty): 0 mL means no cement, 0 % no lesion.

For lhs/random a parameter is a range ``{min: a, max: b}`` (``log: true`` samples log-uniform)
or a list of choices.  Every case is resolved and checked before any case runs: key paths
must exist in the base case (or be creatable mapping keys), values must have the type of
the value they replace, and one case per scenario is built (not solved) so that misspelt
keys are errors naming the study key path (``parameters.lesions[0].volume_fractio``).
Problems of a value that the solver meets later (``nu: 0.5``) make that case fail: it is
recorded with its one-line error and the study goes on.

Output folder (default ``results/<study name>``)::

    cases/<case id>/record.json    status, error, rows of the case (written atomically, last)
    cases/<case id>/summary.json   fembone run's summary (+ VTU with --vtu)
    results.csv (+ results.parquet when pyarrow is installed), study.json
    plots/*.png, report.html       with --report

The case id is a hash of the resolved case and the fembone version: a rerun skips every case
that has a record (``retry_failed`` reruns the failed ones).  Within a worker process the
mesh and the :class:`~fembone.core.assembly.Assembler` (element geometry + sparsity pattern) are
kept per mesh file and order, so a case that changes only material values or loads does not
re-read the mesh or rebuild them.

Modules: :mod:`~fembone.apps.study.design` (the study file, design points, resolved cases),
:mod:`~fembone.apps.study.execution` (one case, worker processes, Dask),
:mod:`~fembone.apps.study.caches` (per-worker mesh, assembler and solver caches),
:mod:`~fembone.apps.study.records` (records, results.csv/parquet, resume) and
:mod:`~fembone.apps.study.report` (plots, report.html).
"""

from __future__ import annotations

from fembone.apps.study.caches import CACHE_SIZE, clear_caches
from fembone.apps.study.design import (
    DESIGNS,
    STUDY_KEYS,
    Study,
    StudyCase,
    case_hash,
    check_cases,
    delete_path,
    design_points,
    load_study,
    parse_path_at,
)
from fembone.apps.study.design import (
    _drop_empty as _drop_empty,  # used by tests
)
from fembone.apps.study.execution import StudyRun, default_workers, run_case, run_study
from fembone.apps.study.records import (
    BASE_METRICS,
    ID_COLUMNS,
    STATUS_COLUMNS,
    case_dir,
    columns,
    read_record,
    read_table,
    save_record,
    summary_rows,
    table_rows,
    write_study_json,
    write_table,
)
from fembone.apps.study.report import (
    DEFAULT_OUTPUTS,
    DEFAULT_OUTPUTS_VERTEBRA,
    metric_column,
    write_report,
)

__all__ = [
    "BASE_METRICS", "CACHE_SIZE", "DEFAULT_OUTPUTS", "DEFAULT_OUTPUTS_VERTEBRA", "DESIGNS", "ID_COLUMNS",
    "STATUS_COLUMNS", "STUDY_KEYS", "Study", "StudyCase", "StudyRun", "case_dir", "case_hash", "check_cases",
    "clear_caches", "columns", "default_workers", "delete_path", "design_points", "load_study", "metric_column",
    "parse_path_at", "read_record", "read_table", "run_case", "run_study", "save_record", "summary_rows",
    "table_rows", "write_report", "write_study_json", "write_table",
]
