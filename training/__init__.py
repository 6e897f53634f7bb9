"""Tag models, guideline checks, few-shot classifiers, versions and training reports.

Arrives with the training issue; the package exists so the layout is stable.
"""
