"""Helpers shared by the estimators: tensor conversion, devices, scikit-learn shims."""
