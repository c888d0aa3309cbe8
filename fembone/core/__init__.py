"""The general finite-element engine: meshes, elements, materials, assembly, constraints,
loads, selectors, solvers, results, beams and point location.

Knows no anatomy, no case file and no screen.  Units: mm, N, MPa.
"""
