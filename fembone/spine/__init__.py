"""The spine layer: bone laws, vertebra geometry, lesions, cement, screws, set-ups and risk.

Built on :mod:`fembone.core`; knows nothing of case files or commands.  Units: mm, N, MPa.
"""
