"""Assembly-only timing of the vertebra-like tet10 model: fembone stages vs scikit-fem.

fembone stages: ``geometry`` (affine test + reference moments; dN/dx at the quadrature
points only for curved elements), ``pattern`` (unique 3x3
node blocks and the element -> block map), ``blocks`` (element blocks summed with
``np.bincount``), ``csr`` (full symmetric CSR from the upper blocks).  scikit-fem:
``Basis`` (its geometry) + ``asm`` of the same isotropic form with per-element Lame
parameters.  Each measurement runs in a fresh process (wall time, CPU time, peak RSS).

    python benchmarks/assembly.py --sizes 205k,814k --repeat 3

Meshes come from benchmarks/vertebra_like.py (generated on first use).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import vertebra_like as V  # noqa: E402

RESULTS = V.HERE / "results_assembly.json"


def child_fembone(msh: Path) -> dict:
    from fembone.core.assembly import blocks_to_matrix, build_pattern, element_geometry
    from fembone.core.mesh import read_mesh

    mesh = read_mesh(msh)
    lam = np.zeros(mesh.n_elements)
    mu = np.zeros(mesh.n_elements)
    for name, m in V.MATERIALS.items():
        E, nu = m["E"], m["nu"]
        lam[mesh.cell_sets[name]] = E * nu / ((1 + nu) * (1 - 2 * nu))
        mu[mesh.cell_sets[name]] = E / (2 * (1 + nu))
    out, cpu = {}, {}
    T, C = time.perf_counter, time.process_time
    from fembone.core.assembly import Assembler, affine_elements, reference_pair_moments

    asm = Assembler.__new__(Assembler)
    asm.mesh, asm.degree = mesh, None
    t, c = T(), C()
    # "geometry": what assembly needs of it: the affine test and the reference moments for
    # straight-sided elements, quadrature gradients only for curved ones
    asm.affine, asm.moments = affine_elements(mesh), reference_pair_moments(mesh)
    asm.geometry = element_geometry(mesh) if not asm.affine.all() else None
    out["geometry"], cpu["geometry"] = T() - t, C() - c
    t, c = T(), C()
    pat = build_pattern(mesh.cells, mesh.n_nodes)
    out["pattern"], cpu["pattern"] = T() - t, C() - c
    asm.pattern = pat
    t, c = T(), C()
    U = asm.upper_blocks(lam, mu)
    out["blocks"], cpu["blocks"] = T() - t, C() - c
    t, c = T(), C()
    K = blocks_to_matrix(pat, U, "csr")
    out["csr"], cpu["csr"] = T() - t, C() - c
    out["total"] = sum(out.values())
    out["cpu_total"] = sum(cpu.values())
    out["dofs"] = int(K.shape[0])
    out["nnz"] = int(K.nnz)
    out["trace"] = float(K.diagonal().sum())
    return out


def child_skfem(msh: Path) -> dict:
    T, C = time.perf_counter, time.process_time
    m, ib, K, f, D, top_z, t_read, t_asm = V._skfem_problem(msh)  # noqa: F841 (same form as vertebra_like)
    return {"total": t_asm, "dofs": int(K.shape[0]), "nnz": int(K.nnz), "trace": float(K.diagonal().sum())}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="205k,814k")
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--skip-peers", action="store_true")
    ap.add_argument("--child")
    ap.add_argument("--mesh")
    ap.add_argument("--out")
    args = ap.parse_args(argv)
    if args.child:
        fn = child_fembone if args.child == "fembone" else child_skfem
        Path(args.out).write_text(json.dumps(fn(Path(args.mesh))))
        return 0
    rows = []
    codes = ["fembone"] + ([] if args.skip_peers or not V.available("skfem") else ["skfem"])
    for label in args.sizes.split(","):
        msh = V.generate(label)
        for code in codes:
            runs = []
            for _ in range(args.repeat):
                with tempfile.NamedTemporaryFile(suffix=".json", dir=V.WORK, delete=False) as tf:
                    out = Path(tf.name)
                log = out.with_suffix(".log")
                wall, rss, rc, cpu = V._wait([sys.executable, __file__, "--child", code, "--mesh", str(msh), "--out", str(out)],
                                             V.HERE.parent, log=log)
                if rc != 0:
                    print(log.read_text()[-2000:])
                    raise SystemExit(f"{code} {label} failed")
                r = json.loads(out.read_text())
                out.unlink()
                log.unlink(missing_ok=True)
                r["peak_gb"] = rss
                runs.append(r)
                print(f"  {label} {code}: {r['total']:.2f} s", flush=True)
            row = {"size": label, "code": code, **runs[0]}
            for k in ("geometry", "pattern", "blocks", "csr", "total", "cpu_total", "peak_gb"):
                if k in runs[0]:
                    row[k] = statistics.median(r[k] for r in runs)
            rows.append(row)
    print(f"\n{'size':>5} {'DOFs':>9} {'code':<8} {'geometry':>8} {'pattern':>8} {'blocks':>7} {'csr':>6} {'total':>7} {'cpu':>6} {'peak GB':>7}  trace(K)")
    f = V.fmt
    for r in rows:
        print(f"{r['size']:>5} {r['dofs']:>9,} {r['code']:<8} {f(r.get('geometry'), 2):>8} {f(r.get('pattern'), 2):>8} "
              f"{f(r.get('blocks'), 2):>7} {f(r.get('csr'), 2):>6} {r['total']:>7.2f} {f(r.get('cpu_total'), 2):>6} "
              f"{r['peak_gb']:>7.2f}  {r['trace']:.6e}")
    RESULTS.write_text(json.dumps(rows, indent=1))
    print(f"\nwritten {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
